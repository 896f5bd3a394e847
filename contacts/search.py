"""Finding contacts by what people type: a number in any form, or the start of a name or e-mail.

One place for the admin's contact list and the dashboard's search alike. Indexed lookups
only (the unique phone index, the name and e-mail prefix indexes): over a million contacts
a search must never read the table.
"""

from __future__ import annotations

import phonenumbers
from django.conf import settings
from django.db.models import Q, QuerySet

from contacts.models import Contact
from contacts.phones import InvalidPhoneNumber, to_e164


def search_contacts(contacts: QuerySet[Contact], typed: str) -> QuerySet[Contact]:
    """The contacts of `contacts` that `typed` names; all of them when nothing was typed."""
    term = typed.strip()
    if not term:
        return contacts
    if "@" in term:
        return contacts.filter(email__in={term, term.lower()})
    if any(ch.isdigit() for ch in term):
        return contacts.filter(phone_lookup(term))
    spellings = {term, term.title()}  # prefix matches use the name indexes
    names = Q()
    for spelling in spellings:
        names |= Q(first_name__startswith=spelling) | Q(last_name__startswith=spelling)
    return contacts.filter(names)


def phone_lookup(term: str) -> Q:
    """The number in E.164 if it is one; else the numbers that start as it does.

    A partial number is read as people write one: "+44 7911", "0044 7911", "07911" (in
    HERALD_DEFAULT_REGION) or "447911"; the prefix match uses the phone index.
    """
    region = settings.HERALD_DEFAULT_REGION
    try:
        return Q(phone=to_e164(term, region))
    except InvalidPhoneNumber:
        pass
    text = term.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if text.startswith("00"):
        digits = digits[2:]
    elif text.startswith("0") and region:
        digits = f"{phonenumbers.country_code_for_region(region)}{digits[1:]}"
    return Q(phone__startswith=f"+{digits}")
