"""Adding contacts to a group, or taking them out, by id or by a list of numbers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings

from contacts.models import Contact, Group
from contacts.phones import InvalidPhoneNumber, to_e164

#: A pasted or uploaded list of numbers holds at most this many: a bigger one is an import.
MOST_NUMBERS = 10_000
AT_ONCE = 1_000


@dataclass
class NumberList:
    phones: list[str] = field(default_factory=list)  # E.164, each once
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, why)


def read_numbers(lines: Iterable[str], region: str | None = None) -> NumberList:
    """One number a line (the first cell of a CSV line); a header line is no number."""
    found = NumberList()
    seen: set[str] = set()
    for line_number, line in enumerate(lines, 1):
        cell = line.split(",")[0].split(";")[0].strip().strip('"')
        if not cell or (line_number == 1 and not any(ch.isdigit() for ch in cell)):
            continue
        try:
            phone = to_e164(cell, region or settings.HERALD_DEFAULT_REGION)
        except InvalidPhoneNumber as exc:
            found.rejected.append((line_number, str(exc)))
            continue
        if phone not in seen:
            seen.add(phone)
            found.phones.append(phone)
    return found


def add_to_group(group: Group, contact_ids: Iterable[int]) -> int:
    """Members added (those already in it are left as they are)."""
    through = Contact.groups.through
    ids = list(contact_ids)
    added = 0
    for start in range(0, len(ids), AT_ONCE):
        chunk = ids[start : start + AT_ONCE]
        present = set(
            through.objects.filter(group=group, contact_id__in=chunk).values_list(
                "contact_id", flat=True
            )
        )
        new = [through(group=group, contact_id=pk) for pk in chunk if pk not in present]
        through.objects.bulk_create(new, ignore_conflicts=True)
        added += len(new)
    return added


def remove_from_group(group: Group, contact_ids: Iterable[int]) -> int:
    """Members taken out of the group (the contacts stay)."""
    ids = list(contact_ids)
    removed = 0
    for start in range(0, len(ids), AT_ONCE):
        chunk = ids[start : start + AT_ONCE]
        removed += Contact.groups.through.objects.filter(
            group=group, contact_id__in=chunk
        ).delete()[0]
    return removed


def contacts_with(phones: list[str]) -> dict[str, int]:
    """{phone: contact id} of the numbers that are contacts."""
    found: dict[str, int] = {}
    for start in range(0, len(phones), AT_ONCE):
        chunk = phones[start : start + AT_ONCE]
        found.update(Contact.objects.filter(phone__in=chunk).values_list("phone", "pk"))
    return found
