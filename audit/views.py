"""The page asking for a password-reset link: one answer whatever the address."""

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django_q.tasks import async_task

from audit.context import client_ip
from audit.models import AuditEvent, PasswordResetRequest

Answer = PasswordResetRequest.Answer


class PasswordResetView(auth_views.PasswordResetView):
    """Django's view, with the rate limits, and the mail left to the worker.

    The request never looks the address up: it notes it, and hands it to the worker, so the
    answer and the time it takes are the same for an address with an account and without.
    """

    def form_valid(self, form: Any) -> HttpResponse:
        asked = PasswordResetRequest.objects.admit(
            form.cleaned_data["email"], client_ip(self.request)
        )
        AuditEvent.record(
            AuditEvent.Action.PASSWORD_RESET_REQUESTED, detail={"answer": asked.answer}
        )
        if asked.answer == Answer.CLIENT_LIMITED:
            return render(
                self.request,
                "registration/password_reset_limited.html",
                {"minutes": settings.HERALD_PASSWORD_RESET_WINDOW_MINUTES},
                status=429,
            )
        if asked.answer == Answer.QUEUED:
            async_task(
                "audit.tasks.send_password_reset",
                asked.pk,
                self.request.get_host(),
                self.request.is_secure(),
            )
        return HttpResponseRedirect(self.get_success_url())
