"""Adding contacts to a group or a tag, or taking them out, by id or by a list of numbers;
and finding a group's members."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, Q

from contacts.models import Contact, Group, Tag
from contacts.phones import InvalidPhoneNumber, to_e164

#: A pasted or uploaded list of numbers holds at most this many: a bigger one is an import.
MOST_NUMBERS = 10_000
AT_ONCE = 1_000
#: From this many members on, a group is found by probing its index from each contact.
BIG_GROUP = 50_000


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
    return _add(Contact.groups.through, "group_id", group.pk, contact_ids)


def remove_from_group(group: Group, contact_ids: Iterable[int]) -> int:
    """Members taken out of the group (the contacts stay)."""
    return _remove(Contact.groups.through, "group_id", group.pk, contact_ids)


def add_tag(tag: Tag, contact_ids: Iterable[int]) -> int:
    """Contacts tagged (those that carried the tag already are left as they are)."""
    return _add(Contact.tags.through, "tag_id", tag.pk, contact_ids)


def remove_tag(tag: Tag, contact_ids: Iterable[int]) -> int:
    """Contacts that no longer carry the tag (the contacts stay)."""
    return _remove(Contact.tags.through, "tag_id", tag.pk, contact_ids)


def _add(through: Any, column: str, target_id: int, contact_ids: Iterable[int]) -> int:
    ids = list(contact_ids)
    added = 0
    for start in range(0, len(ids), AT_ONCE):
        chunk = ids[start : start + AT_ONCE]
        present = set(
            through.objects.filter(**{column: target_id}, contact_id__in=chunk).values_list(
                "contact_id", flat=True
            )
        )
        new = [through(**{column: target_id}, contact_id=pk) for pk in chunk if pk not in present]
        through.objects.bulk_create(new, ignore_conflicts=True)
        added += len(new)
    return added


def _remove(through: Any, column: str, target_id: int, contact_ids: Iterable[int]) -> int:
    ids = list(contact_ids)
    removed = 0
    for start in range(0, len(ids), AT_ONCE):
        chunk = ids[start : start + AT_ONCE]
        removed += through.objects.filter(**{column: target_id}, contact_id__in=chunk).delete()[0]
    return removed


def members_condition(through: Any, column: str, target_id: int | str) -> Q:
    """Contacts in one group (or with one tag), without the DISTINCT Django's M2M filter adds.

    Over a million contacts the query shape decides everything: a big group is best
    found by walking contacts newest first and probing the membership index, a small
    one by starting from its members.
    """
    members = through.objects.filter(**{column: target_id})
    if len(members.values_list("pk", flat=True)[:BIG_GROUP]) < BIG_GROUP:
        return Q(pk__in=members.values("contact_id"))
    return Q(Exists(members.filter(contact_id=OuterRef("pk"))))


def contacts_with(phones: list[str]) -> dict[str, int]:
    """{phone: contact id} of the numbers that are contacts."""
    found: dict[str, int] = {}
    for start in range(0, len(phones), AT_ONCE):
        chunk = phones[start : start + AT_ONCE]
        found.update(Contact.objects.filter(phone__in=chunk).values_list("phone", "pk"))
    return found
