"""Who can be messaged: contacts, their groups and tags, and who asked not to be."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, OuterRef

from contacts.phones import InvalidPhoneNumber, time_zones_for, to_e164


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"


class PhoneNumberFormField(forms.CharField):
    """Accepts what people type (spaces, brackets, 00 prefix, national form)."""

    def __init__(self, *args: Any, region: str | None = None, **kwargs: Any) -> None:
        self.region = region
        kwargs.setdefault("help_text", "International (+44 7911 123456) or national form.")
        super().__init__(*args, **kwargs)

    def to_python(self, value: Any) -> str:
        text = super().to_python(value) or ""
        if not text:
            return text
        try:
            return to_e164(text, self.region or settings.HERALD_DEFAULT_REGION)
        except InvalidPhoneNumber as exc:
            raise ValidationError(
                "Enter a valid phone number, e.g. +44 7911 123456 (%(reason)s).",
                code="invalid_phone",
                params={"reason": exc},
            ) from exc


class PhoneNumberField(models.CharField):
    """A CharField that stores E.164 and normalises whatever it is given on clean."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 16)
        super().__init__(*args, **kwargs)

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value)
        if not value:
            return value
        try:
            return to_e164(value, settings.HERALD_DEFAULT_REGION)
        except InvalidPhoneNumber as exc:
            raise ValidationError(
                "Enter a valid phone number, e.g. +44 7911 123456 (%(reason)s).",
                code="invalid_phone",
                params={"reason": exc},
            ) from exc

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
    ) -> ContactQuerySet:
        """Members of any of `groups` or carrying any of `tags`, minus `exclude_groups`.

        Built with EXISTS rather than joins, so a contact in two chosen groups
        still comes back once.
        """
        group_ids = [g.pk for g in groups]
        tag_ids = [t.pk for t in tags]
        excluded_ids = [g.pk for g in exclude_groups]
        if not group_ids and not tag_ids:
            return self.none()
        memberships = Contact.groups.through.objects.filter(contact_id=OuterRef("pk"))
        taggings = Contact.tags.through.objects.filter(contact_id=OuterRef("pk"))
        chosen = models.Q(Exists(memberships.filter(group_id__in=group_ids))) | models.Q(
            Exists(taggings.filter(tag_id__in=tag_ids))
        )
        qs = self.filter(chosen)
        if excluded_ids:
            qs = qs.exclude(Exists(memberships.filter(group_id__in=excluded_ids)))
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
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    language = models.CharField(max_length=10, blank=True)
    timezone = models.CharField(
        max_length=64, blank=True, help_text="IANA zone; filled from the number when left empty."
    )
    attributes = models.JSONField(
        default=dict, blank=True, help_text="Custom fields, usable as {{name}} in templates."
    )
    groups = models.ManyToManyField(Group, blank=True, related_name="contacts")
    tags = models.ManyToManyField(Tag, blank=True, related_name="contacts")
    consent_source = models.CharField(max_length=100, blank=True)
    consent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ContactQuerySet.as_manager()

    #: Fixed fields a template may use besides the custom attributes.
    TEMPLATE_FIELDS = ("phone", "first_name", "last_name", "email")

    class Meta:
        ordering = ("-id",)

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return f"{name} ({self.phone})" if name else self.phone

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.timezone and self.phone:
            self.timezone = guess_timezone(self.phone)
        super().save(*args, **kwargs)

    def template_fields(self) -> dict[str, str]:
        """What `{{name}}` placeholders may read: custom attributes, then the fixed fields."""
        fields = {str(k): "" if v is None else str(v) for k, v in self.attributes.items()}
        fields.update({name: getattr(self, name) for name in self.TEMPLATE_FIELDS})
        return fields


def guess_timezone(e164: str) -> str:
    """The number's zone when it has exactly one; a number spanning several stays undecided
    so the send window can apply the most restrictive of them."""
    zones = time_zones_for(e164)
    return zones[0] if len(zones) == 1 else ""


class OptOutQuerySet(models.QuerySet["OptOut"]):
    def for_channel(self, channel: str) -> OptOutQuerySet:
        return self.filter(channel=channel)

    def phones(self, channel: str, phones: Iterable[str]) -> set[str]:
        """Which of `phones` are suppressed on `channel` (one query)."""
        return set(
            self.filter(channel=channel, phone__in=list(phones)).values_list("phone", flat=True)
        )


class OptOut(models.Model):
    """A suppression entry: this number is never messaged on this channel."""

    class Source(models.TextChoices):
        MANUAL = "manual", "Added by staff"
        IMPORT = "import", "Imported list"
        STOP_REPLY = "stop_reply", "STOP reply"
        PROVIDER = "provider", "Reported by the provider"

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
