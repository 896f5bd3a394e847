"""GDPR erasure of a person: their contact and every copy of their number, for good.

What is erased here is what the contacts app keeps (the contact, its memberships and
opt-outs, import previews and undo entries, admin history); apps above it erase their
own copies through the `erasing` signal, inside the same transaction. What is left is
one ErasedNumber: a keyed hash that refuses the number everywhere from then on.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Q

from contacts.models import (
    Contact,
    ErasedNumber,
    ImportJob,
    ImportUndo,
    OptOut,
    erasing,
    erasure_hash,
)

logger = logging.getLogger(__name__)
ERASED_TEXT = "(erased)"


def erase(contact_ids: Iterable[int] = (), phones: Iterable[str] = ()) -> dict[str, int]:
    """Erase these contacts and these E.164 numbers everywhere; returns rows changed per kind.

    Safe to run again for the same person (it finds nothing more to change).
    """
    with transaction.atomic():
        contacts = Contact.objects.filter(Q(pk__in=list(contact_ids)) | Q(phone__in=list(phones)))
        found = dict(contacts.values_list("pk", "phone"))
        ids, numbers = sorted(found), sorted({*phones, *found.values()})
        changed: Counter[str] = Counter()
        for _receiver, reply in erasing.send(sender=Contact, phones=numbers, contact_ids=ids):
            changed.update(reply or {})
        changed.update(_scrub_imports(ids, numbers))
        changed["admin history entries"] += _scrub_admin_log(ids, numbers)
        opt_outs = OptOut.objects.filter(phone__in=numbers)
        changed["admin history entries"] += _scrub_admin_log_of(OptOut, opt_outs)
        changed["opt-outs replaced by the erased entry"] += opt_outs.delete()[0]
        changed["contacts"] += (
            Contact.objects.filter(pk__in=ids).delete()[1].get(Contact._meta.label, 0)
        )
        for phone in numbers:
            ErasedNumber.objects.get_or_create(phone_hash=erasure_hash(phone))
    # Counts only: the point is that the number is gone, so it is not logged either.
    logger.info("erased %d contact(s), %d number(s): %s", len(ids), len(numbers), dict(changed))
    return {kind: n for kind, n in changed.items() if n}


def _scrub_imports(ids: list[int], phones: list[str]) -> Counter[str]:
    """Import previews name sample rows and errors; undo entries hold old values."""
    changed: Counter[str] = Counter()
    for job in ImportJob.objects.exclude(preview={}).only("pk", "preview").iterator():
        preview = _without_phones(job.preview, phones)
        if preview != job.preview:
            ImportJob.objects.filter(pk=job.pk).update(preview=preview)
            changed["import previews"] += 1
    wanted = set(ids)
    for entry in ImportUndo.objects.iterator(chunk_size=100):
        kept = {
            name: [pair for pair in getattr(entry, name) if pair[0] not in wanted]
            for name in ("previous_values", "added_groups", "added_tags")
        }
        if any(kept[name] != getattr(entry, name) for name in kept):
            ImportUndo.objects.filter(pk=entry.pk).update(**kept)
            changed["import undo entries"] += 1
    return changed


def _without_phones(preview: dict[str, Any], phones: list[str]) -> dict[str, Any]:
    samples = [s for s in preview.get("samples", []) if s.get("phone") not in phones]
    errors = [
        {**e, "error": ERASED_TEXT} if any(p in str(e.get("error")) for p in phones) else e
        for e in preview.get("errors", [])
    ]
    return {**preview, "samples": samples, "errors": errors} if "samples" in preview else preview


def _scrub_admin_log(ids: list[int], phones: list[str]) -> int:
    """The admin's history names each object as str() made it then: "Ann (+44...)"."""
    contact_type = ContentType.objects.get_for_model(Contact)
    mentions = Q(content_type=contact_type, object_id__in=[str(pk) for pk in ids])
    for phone in phones:
        mentions |= Q(object_repr__contains=phone) | Q(change_message__contains=phone)
    return LogEntry.objects.filter(mentions).update(object_repr=ERASED_TEXT, change_message="")


def _scrub_admin_log_of(model: type[Any], objects: Any) -> int:
    content_type = ContentType.objects.get_for_model(model)
    object_ids = [str(pk) for pk in objects.values_list("pk", flat=True)]
    entries = LogEntry.objects.filter(content_type=content_type, object_id__in=object_ids)
    return entries.update(object_repr=ERASED_TEXT, change_message="")


def purge_import_files(before: datetime, dry_run: bool = False) -> int:
    """Delete stored files of imports finished before `before`; the job keeps its counts."""
    done = (ImportJob.Status.COMPLETED, ImportJob.Status.ROLLED_BACK)
    kept = ~Q(file="") | ~Q(error_report="") | Q(preview__has_key="samples")
    jobs = ImportJob.objects.filter(kept, status__in=done, finished_at__lt=before)
    if dry_run:
        return jobs.count()
    purged = 0
    for job in jobs.iterator():
        for stored in (job.file, job.error_report):
            if stored:
                stored.delete(save=False)
        preview = {k: v for k, v in job.preview.items() if k not in ("samples", "errors")}
        ImportJob.objects.filter(pk=job.pk).update(file="", error_report="", preview=preview)
        purged += 1
    return purged
