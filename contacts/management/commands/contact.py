"""Erase one person for good (GDPR), from the shell.

    python manage.py contact erase TARGET [--yes]

TARGET is a contact id (digits only, up to 9 of them) or a phone number in any form
(+44 7911 123456, 07911 123456 in the default region). Without --yes nothing is
changed: the command says whom it found and how to go ahead. A number with no
contact left is still erased everywhere it appears, and refused from then on.
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from contacts.erasure import erase
from contacts.models import Contact
from contacts.phones import InvalidPhoneNumber, redact, to_e164

MAX_ID_DIGITS = 9


class Command(BaseCommand):
    help = "Erase a contact and every copy of their number (GDPR right to erasure)."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        erase_parser = subcommands.add_parser("erase", help="erase one contact or number")
        erase_parser.add_argument("target", help="a contact id, or a phone number")
        erase_parser.add_argument("--yes", action="store_true", help="really erase (no undo)")

    def handle(self, *args: Any, **options: Any) -> None:
        contact, phone = _find(options["target"])
        who = f"contact #{contact.pk} ({redact(phone)})" if contact else f"number {redact(phone)}"
        if not options["yes"]:
            raise CommandError(f"would erase {who}; this cannot be undone: add --yes to do it")
        changed = erase(contact_ids=[contact.pk] if contact else [], phones=[phone])
        figures = " ".join(f"{k.replace(' ', '_')}={n}" for k, n in sorted(changed.items()))
        self.stdout.write(f"erased {who}: {figures or 'nothing held it'}")


def _find(target: str) -> tuple[Contact | None, str]:
    text = target.strip()
    if text.isdigit() and not text.startswith("0") and len(text) <= MAX_ID_DIGITS:
        contact = Contact.objects.filter(pk=int(text)).first()
        if contact is None:
            raise CommandError(f"no contact with id {text} (give a number with + to erase one)")
        return contact, contact.phone
    try:
        phone = to_e164(text, settings.HERALD_DEFAULT_REGION)
    except InvalidPhoneNumber as exc:
        raise CommandError(
            f"{target!r} is neither a contact id nor a phone number: {exc}"
        ) from None
    # No contact (deleted, or erased before) still erases whatever holds the number.
    return Contact.objects.filter(phone=phone).first(), phone
