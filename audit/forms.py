"""The password-reset form as the worker runs it (audit/tasks.py)."""

from typing import Any

from django.contrib.auth.forms import PasswordResetForm
from django.core.mail import EmailMultiAlternatives
from django.template import loader

from audit.models import AuditEvent


class ResetLinkForm(PasswordResetForm):
    """Django's form, except that a mail which cannot be sent fails the task (Django's would
    only log it), and each one sent is in the audit log."""

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict[str, Any],
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        subject = "".join(loader.render_to_string(subject_template_name, context).splitlines())
        body = loader.render_to_string(email_template_name, context)
        message = EmailMultiAlternatives(subject, body, from_email, [to_email])
        if html_email_template_name is not None:
            html = loader.render_to_string(html_email_template_name, context)
            message.attach_alternative(html, "text/html")
        message.send()
        AuditEvent.record(AuditEvent.Action.PASSWORD_RESET_SENT, actor=context["user"])
