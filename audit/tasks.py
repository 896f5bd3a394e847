"""Worker tasks of the sign-in area."""

from audit.forms import ResetLinkForm
from audit.models import PasswordResetRequest


def send_password_reset(request_id: int, domain: str, use_https: bool) -> int:
    """Mail a reset link to each active user of a request's address; how many were sent.

    Run by the worker, so the page answering the request does the same work whether or not
    the address belongs to anyone. The address is forgotten once the mails are sent.
    """
    asked = PasswordResetRequest.objects.filter(pk=request_id).exclude(email="").first()
    if asked is None:
        return 0
    form = ResetLinkForm({"email": asked.email})
    if not form.is_valid():
        return 0
    users = len(list(form.get_users(asked.email)))
    form.save(domain_override=domain, use_https=use_https)
    PasswordResetRequest.objects.filter(pk=asked.pk).update(email="")
    return users
