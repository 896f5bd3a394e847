"""Who can be messaged: contacts, their groups and tags, and who asked not to be."""

from __future__ import annotations

import functools
import hashlib
import hmac
import operator
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, F, OuterRef
from django.db.models.signals import post_save
from django.dispatch import Signal, receiver
from django.utils import timezone

from contacts import events
from contacts.lookups import Among
from contacts.phones import InvalidPhoneNumber, country_of, time_zones_for, to_e164


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"


def normalise_phone(text: str, region: str | None = None) -> str:
    """E.164 for a form or model value, or a ValidationError a person can act on."""
    try:
        return to_e164(text, region or settings.HERALD_DEFAULT_REGION)
    except InvalidPhoneNumber as exc:
        raise ValidationError(
            "Enter a valid phone number, e.g. +44 7911 123456 (%(reason)s).",
            code="invalid_phone",
            params={"reason": exc},
        ) from exc


class PhoneNumberFormField(forms.CharField):
    """Accepts what people type (spaces, brackets, 00 prefix, national form)."""

    def __init__(self, *args: Any, region: str | None = None, **kwargs: Any) -> None:
        self.region = region
        kwargs.setdefault("help_text", "International (+44 7911 123456) or national form.")
        super().__init__(*args, **kwargs)

    def to_python(self, value: Any) -> str:
        text = super().to_python(value) or ""
        return normalise_phone(text, self.region) if text else text


class PhoneNumberField(models.CharField):
    """A CharField holding E.164; model validation normalises whatever it was given.

    Normalising happens in clean(), not to_python(): Django also runs to_python on
    every lookup value, and parsing numbers there would cost a phonenumbers parse per
    value of every `phone__in=` query.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 16)
        super().__init__(*args, **kwargs)

    def clean(self, value: Any, model_instance: Any) -> Any:
        return super().clean(normalise_phone(str(value)) if value else value, model_instance)

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(**{"form_class": PhoneNumberFormField, **kwargs})


class Group(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class ContactQuerySet(models.QuerySet["Contact"]):
    def in_audience(
        self,
        groups: Iterable[Group] = (),
        tags: Iterable[Tag] = (),
        exclude_groups: Iterable[Group] = (),
        exclude_tags: Iterable[Tag] = (),
        also: Iterable[models.Q] = (),
        minus: Iterable[models.Q] = (),
        after: int = 0,
    ) -> ContactQuerySet:
        """Members of any of `groups`, carrying any of `tags` or meeting any of the
        conditions `also`; minus members of `exclude_groups`, carriers of `exclude_tags`
        and those meeting any of `minus`. With `after`, only contacts with a greater id.

        Built with EXISTS rather than joins, so a contact in two chosen groups
        still comes back once.
        """
        group_ids = [g.pk for g in groups]
        tag_ids = [t.pk for t in tags]
        # Each subquery is told `after` too: read a chunk at a time past `after`, PostgreSQL
        # merges the memberships in contact order, and would otherwise read them all from
        # the first contact for every chunk (a build's chunks would cost ever more).
        later = {"contact_id__gt": after} if after else {}
        memberships = Contact.groups.through.objects.filter(contact_id=OuterRef("pk"), **later)
        taggings = Contact.tags.through.objects.filter(contact_id=OuterRef("pk"), **later)
        conditions = []  # the cheap ones first: SQLite stops at the first that holds
        if group_ids:
            conditions.append(models.Q(Exists(memberships.filter(group_id__in=group_ids))))
        if tag_ids:
            conditions.append(models.Q(Exists(taggings.filter(tag_id__in=tag_ids))))
        conditions += also
        if not conditions:
            return self.none()
        qs = self.filter(functools.reduce(operator.or_, conditions))
        if after:
            qs = qs.filter(pk__gt=after)
        if excluded_ids := [g.pk for g in exclude_groups]:
            qs = qs.exclude(Exists(memberships.filter(group_id__in=excluded_ids)))
        if excluded_tag_ids := [t.pk for t in exclude_tags]:
            qs = qs.exclude(Exists(taggings.filter(tag_id__in=excluded_tag_ids)))
        for condition in minus:
            # By id: a condition may be NULL for some contacts (an attribute they lack), and
            # NOT NULL would drop them as surely as a match.
            excluded = Contact.objects.filter(condition, pk__gt=after).values("pk")
            qs = qs.exclude(pk__in=excluded)
        return qs

    def opted_out(self, channel: str) -> ContactQuerySet:
        return self.filter(
            Exists(OptOut.objects.for_channel(channel).filter(phone=OuterRef("phone")))
        )

    def sendable(self, channel: str) -> ContactQuerySet:
        """Contacts that may be messaged on `channel`: not on its suppression list."""
        return self.exclude(
            Exists(OptOut.objects.for_channel(channel).filter(phone=OuterRef("phone")))
        )


class Contact(models.Model):
    phone = PhoneNumberField(unique=True, help_text="Stored in E.164, e.g. +447911123456.")
    country = models.CharField(
        max_length=2,
        blank=True,
        editable=False,
        db_default="",  # rows written by bulk insert that name no such column
        help_text="ISO code of the number's country, kept with the number for segments.",
    )
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    language = models.CharField(max_length=10, blank=True)
    timezone = models.CharField(
        max_length=64, blank=True, help_text="IANA zone; empty means the zones of the number."
    )
    attributes = models.JSONField(
        default=dict, blank=True, help_text="Custom fields, usable as {{name}} in templates."
    )
    groups = models.ManyToManyField(Group, blank=True, related_name="contacts")
    tags = models.ManyToManyField(Tag, blank=True, related_name="contacts")
    consent_source = models.CharField(max_length=100, blank=True)
    consent_at = models.DateTimeField(null=True, blank=True)
    import_job = models.ForeignKey(
        "ImportJob",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="created_contacts",
        db_index=False,  # only read when rolling an import back
        help_text="The import that created this contact.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ContactQuerySet.as_manager()

    #: Fixed fields a template may use besides the custom attributes.
    TEMPLATE_FIELDS = ("phone", "first_name", "last_name", "email")

    class Meta:
        ordering = ("-id",)
        # Pattern-ops indexes on PostgreSQL serve both `=` and prefix LIKE (the contact
        # list's name and e-mail search); elsewhere they are plain indexes.
        indexes = [
            models.Index(
                fields=[name], name=f"contact_{name}_prefix", opclasses=["varchar_pattern_ops"]
            )
            for name in ("first_name", "last_name", "email")
        ] + [models.Index(fields=["country"], name="contact_country")]

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return f"{name} ({self.phone})" if name else self.phone

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The number's country goes with the number, wherever it was set from.
        self.country = country_of(self.phone or "")
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "phone" in update_fields:
            kwargs["update_fields"] = {*update_fields, "country"}
        super().save(*args, **kwargs)

    @property
    def time_zones(self) -> list[str]:
        """The contact's own zone if set, else every zone its number may be in."""
        return [self.timezone] if self.timezone else list(time_zones_for(self.phone))

    def template_fields(self) -> dict[str, str]:
        """What `{{name}}` placeholders may read: custom attributes, then the fixed fields."""
        fields = {str(k): "" if v is None else str(v) for k, v in self.attributes.items()}
        fields.update({name: getattr(self, name) for name in self.TEMPLATE_FIELDS})
        return fields

    def clean(self) -> None:
        if self.phone and ErasedNumber.objects.includes(self.phone):
            raise ValidationError({"phone": ERASED_REFUSAL}, code="erased")


class OptOutQuerySet(models.QuerySet["OptOut"]):
    def for_channel(self, channel: str) -> OptOutQuerySet:
        return self.filter(channel=channel)

    def phones(self, channel: str, phones: Iterable[str]) -> set[str]:
        """Which of `phones` are suppressed on `channel`: opted out, or erased (any channel)."""
        phones = list(phones)
        among = self.filter(Among(F("phone"), phones), channel=channel)
        opted_out = among.values_list("phone", flat=True)
        return set(opted_out) | ErasedNumber.objects.among(phones)

    def add_by_staff(self, phone: str, channel: str) -> bool:
        """Put a number on a channel's list by a staff member's hand; False if it was on it.

        An erased number is refused (ValidationError): it is suppressed everywhere already,
        and must not come back in clear.
        """
        if ErasedNumber.objects.includes(phone):
            raise ValidationError({"phone": ERASED_REFUSAL}, code="erased")
        _entry, created = self.get_or_create(
            phone=phone, channel=channel, defaults={"source": OptOut.Source.MANUAL}
        )
        return created


class OptOut(models.Model):
    """A suppression entry: this number is never messaged on this channel."""

    class Source(models.TextChoices):
        MANUAL = "manual", "Added by staff"
        IMPORT = "import", "Imported list"
        REPLY = "reply", "Reply"  # the person's own message (messaging.inbound keeps it)
        PROVIDER = "provider", "Reported by the provider"

    #: Sources a START reply may undo: only what the person asked for themselves by a reply,
    #: never staff's, an import's or an erasure's.
    RESUBSCRIBABLE = (Source.REPLY,)

    phone = PhoneNumberField()
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.SMS)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OptOutQuerySet.as_manager()

    class Meta:
        verbose_name = "opt-out"
        constraints = [
            models.UniqueConstraint(fields=("phone", "channel"), name="optout_unique_phone_channel")
        ]

    def __str__(self) -> str:
        return f"{self.phone} ({self.get_channel_display()})"

    def clean(self) -> None:
        # Erased numbers are suppressed on every channel already, and must not reappear in clear.
        if self.phone and ErasedNumber.objects.includes(self.phone):
            raise ValidationError({"phone": ERASED_REFUSAL}, code="erased")


@receiver(post_save, sender=OptOut, dispatch_uid="contacts.announce_opt_out")
def announce_opt_out(sender: Any, instance: OptOut, created: bool, **kwargs: Any) -> None:
    """Every opt-out written through the ORM (staff, a reply, a provider's report, the API)
    is announced; bulk imports announce theirs where they insert them."""
    if created and not kwargs.get("raw") and events.opted_out.wanted():
        entry = (instance.phone, instance.channel, instance.source, instance.created_at)
        events.opted_out.send(sender=OptOut, entries=[entry])


ERASED_REFUSAL = (
    "This number was erased at its owner's request (GDPR) and may never be added or messaged again."
)


@functools.lru_cache(maxsize=4)
def _erasure_mac(key: str, secret_key: str) -> Any:
    """The keyed hash with its key already absorbed; copied for each number."""
    if not key:
        key = hashlib.sha256(b"herald-erasure:" + secret_key.encode()).hexdigest()
    return hmac.new(key.encode(), digestmod=hashlib.sha256)


def erasure_hash(phone: str) -> str:
    """HMAC-SHA256 of an E.164 number under HERALD_ERASURE_KEY.

    Keyed, because there are only about 10^10 numbers in a country's plan: a plain
    SHA-256 of each could be computed for all of them in an afternoon.
    """
    return erasure_hashes([phone])[phone]


def erasure_hashes(phones: Iterable[str]) -> dict[str, str]:
    """{phone: erasure_hash(phone)}, with the key looked up once for them all (~1.3 µs each)."""
    keyed = _erasure_mac(settings.HERALD_ERASURE_KEY, settings.SECRET_KEY)
    hashes = {}
    for phone in phones:
        mac = keyed.copy()
        mac.update(phone.encode())
        hashes[phone] = mac.hexdigest()
    return hashes


#: Erased numbers are compared in memory up to this many (erasures are rare: usually all).
ERASED_IN_MEMORY = 20_000


class ErasedNumberQuerySet(models.QuerySet["ErasedNumber"]):
    def among(self, phones: Iterable[str]) -> set[str]:
        """Which of `phones` were erased; nothing is hashed while no number ever was."""
        phones = list(phones)
        known = list(self.values_list("phone_hash", flat=True)[: ERASED_IN_MEMORY + 1])
        if not phones or not known:
            return set()
        by_hash = {digest: phone for phone, digest in erasure_hashes(phones).items()}
        if len(known) <= ERASED_IN_MEMORY:
            # Comparing in memory: an IN of 5,000 hashes costs SQLite 30 µs a number.
            return {by_hash[h] for h in by_hash.keys() & set(known)}
        found = self.filter(phone_hash__in=list(by_hash)).values_list("phone_hash", flat=True)
        return {by_hash[h] for h in found}

    def includes(self, phone: str) -> bool:
        return bool(self.among([phone]))


class ErasedNumber(models.Model):
    """The suppression entry a GDPR erasure leaves: a keyed hash of the number, never the number.

    It suppresses every channel, and refuses the number on every way in (import,
    admin, campaigns, test sends).
    """

    phone_hash = models.CharField(max_length=64, unique=True, editable=False)
    erased_at = models.DateTimeField(auto_now_add=True)

    objects = ErasedNumberQuerySet.as_manager()

    class Meta:
        verbose_name = "erased number"

    def __str__(self) -> str:
        return f"erased number {self.phone_hash[:12]}…"


#: Sent inside an erasure's transaction with `phones` (E.164) and `contact_ids`. Apps above
#: contacts that keep copies of a contact's data (messages, campaign previews) connect to it
#: and return {what: rows changed}; contacts never imports them.
erasing = Signal()


class ImportJob(models.Model):
    """One contact or opt-out file on its way in: checked, confirmed, imported, perhaps
    rolled back (contacts only: an opt-out, once on the list, is never taken off by a button).

    Rows are committed a chunk at a time together with the progress fields, so
    `resume_line` always says exactly how far the database has got.
    """

    class Kind(models.TextChoices):
        CONTACTS = "contacts", "Contacts"
        OPT_OUTS = "opt_outs", "Opt-outs"

    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"  # saved, not yet checked
        VALIDATING = "validating", "Checking"  # dry run in progress
        VALIDATED = "validated", "Ready to import"  # preview ready; waits for confirmation
        QUEUED = "queued", "Queued"  # confirmed; waiting for a worker
        RUNNING = "running", "Importing"  # rows are being written
        COMPLETED = (
            "completed",
            "Completed",
        )  # every row written or reported (final unless rolled back)
        FAILED = "failed", "Failed"  # stopped after resume_line; resume or roll back
        ROLLED_BACK = "rolled_back", "Rolled back"  # its changes were undone (final)

    class Origin(models.TextChoices):
        ADMIN = "admin", "Admin upload"
        CLI = "cli", "Command line"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CONTACTS)
    file = models.FileField(upload_to="imports/%Y/%m/", blank=True)
    source_path = models.CharField(max_length=500, blank=True, help_text="File read by the CLI.")
    original_name = models.CharField(max_length=255)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.ADMIN)
    groups = models.ManyToManyField(Group, blank=True, related_name="+")
    tags = models.ManyToManyField(Tag, blank=True, related_name="+")
    region = models.CharField(max_length=2, help_text="Country for numbers without +.")
    channel = models.CharField(
        max_length=16,
        choices=Channel.choices,
        blank=True,
        help_text="Opt-outs: the channel of rows that name none (empty: such rows are refused).",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UPLOADED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    bytes_total = models.BigIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0, help_text="Data rows read so far.")
    resume_line = models.PositiveIntegerField(default=0, help_text="Last file line committed.")
    imported = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    preview = models.JSONField(default=dict, blank=True, editable=False)
    column_mapping = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="How columns are read where the preview changed it: {column number: field}.",
    )
    header = models.JSONField(
        default=list,
        blank=True,
        editable=False,
        help_text="The file's column names, kept when its check found no phone column.",
    )
    error_report = models.FileField(upload_to="imports/errors/%Y/%m/", blank=True)
    failure_reason = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = "contact import"

    def __str__(self) -> str:
        return f"{self.original_name} ({self.get_status_display().lower()})"

    @property
    def path(self) -> str:
        return self.file.path if self.file else self.source_path

    def save_upload(self, upload: Any, by: Any) -> None:
        """Save a job for a file uploaded in the admin, with who sent it, its name and size."""
        self.created_by = by
        self.original_name = str(upload.name)[:255]
        self.bytes_total = upload.size
        self.save()

    @property
    def skipped(self) -> int:
        return self.unchanged + self.duplicates

    def summary_line(self) -> str:
        if self.kind == self.Kind.OPT_OUTS:
            return f"imported={self.imported} skipped={self.skipped} invalid={self.invalid}"
        return (
            f"imported={self.imported} updated={self.updated} "
            f"skipped={self.skipped} invalid={self.invalid}"
        )

    @property
    def may_roll_back(self) -> bool:
        """Contact imports only: rolling back opt-outs could drop a STOP that came in since."""
        return self.kind == self.Kind.CONTACTS

    def was_confirmed(self) -> bool:
        """Whether this job was ever let go to import: from the command line (no preview),
        or from an upload whose preview passed (only a confirmed one fails afterwards)."""
        return self.origin == self.Origin.CLI or bool(self.preview)

    @property
    def is_stalled(self) -> bool:
        """Running, but its worker has written no progress for a long while: it died."""
        quiet_for = (timezone.now() - self.updated_at).total_seconds()
        return (
            self.status == self.Status.RUNNING and quiet_for > settings.HERALD_IMPORT_STALL_SECONDS
        )

    def rows_per_second(self) -> float:
        if not self.started_at or not self.rows_done:
            return 0.0
        end = self.finished_at or timezone.now()
        elapsed = max((end - self.started_at).total_seconds(), 0.001)
        return self.rows_done / elapsed

    def move(self, from_statuses: Iterable[str], to: str, **changes: Any) -> bool:
        """Conditional status change: False when another click or worker got there first."""
        moved = ImportJob.objects.filter(pk=self.pk, status__in=list(from_statuses)).update(
            status=to, updated_at=timezone.now(), **changes
        )
        self.refresh_from_db()
        return moved == 1

    def take_over(self, to: str) -> bool:
        """A stalled run (its worker died) moved on to `to`; False unless it really is stalled."""
        quiet_since = timezone.now() - timedelta(seconds=settings.HERALD_IMPORT_STALL_SECONDS)
        moved = ImportJob.objects.filter(
            pk=self.pk, status=self.Status.RUNNING, updated_at__lt=quiet_since
        ).update(status=to, updated_at=timezone.now(), failure_reason="")
        self.refresh_from_db()
        return moved == 1


class ImportUndo(models.Model):
    """What a chunk of an import changed on contacts that existed before it, to undo it."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="undo_entries")
    previous_values = models.JSONField(default=list, help_text="[[contact id, {field: old}]]")
    added_groups = models.JSONField(default=list, help_text="[[contact id, group id]]")
    added_tags = models.JSONField(default=list, help_text="[[contact id, tag id]]")

    def __str__(self) -> str:
        return f"undo entry {self.pk} of import {self.job_id}"
