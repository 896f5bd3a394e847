"""A new draft campaign from what a script or an integration names: the one way the CLI's
`campaign create` and the API's `POST /api/v1/campaigns` make one.

Everything is named as people name it: the provider account, groups, tags and segments by
name, a message template by name or id, a WhatsApp template by its approved id. Each is
checked here, in one order, and a refusal is a `Refused` about one field, worded with the
field as the door calls it (`spelling`: the CLI says --template where the API says
whatsapp_template). The campaign then passes Campaign.full_clean, the model's own rules,
which the dashboard's builder form ends in too, and is saved with its audience, its
creator one of its authors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from campaigns.forms import in_zone
from campaigns.frequency import OVERRIDE_PERMISSION, may_override
from campaigns.models import (
    AUDIENCE_FIELDS,
    Campaign,
    FrequencyCap,
    MessageTemplate,
    validate_time_zone,
)
from campaigns.segments import Segment
from contacts.models import Channel, Group, Tag
from messaging.backends import backend_class
from messaging.models import ProviderAccount

Named = TypeVar("Named", Group, Tag, Segment)
FREQUENCY_CAP = re.compile(r"(?P<messages>[1-9][0-9]*)/(?P<days>[1-9][0-9]*)")
#: Each audience part: the model its names are looked up in, and what one is called.
AUDIENCE_MODELS: dict[str, tuple[type[Any], str]] = {
    "groups": (Group, "group"),
    "tags": (Tag, "tag"),
    "segments": (Segment, "segment"),
    "exclude_groups": (Group, "group"),
    "exclude_tags": (Tag, "tag"),
    "exclude_segments": (Segment, "segment"),
}
assert set(AUDIENCE_MODELS) == set(AUDIENCE_FIELDS)
#: The largest id a database column holds (a bigger number names nothing).
MAX_ID = 2**63 - 1


class Refused(ValidationError):
    """One thing wrong with what was asked: the field it is about, and the words saying so."""

    def __init__(self, field_name: str, text: str) -> None:
        super().__init__({field_name: [text]})
        self.field_name = field_name
        self.text = text


@dataclass(frozen=True)
class Draft:
    """What a new draft campaign is made of, by names."""

    name: str
    provider: str
    body: str = ""
    #: The texts of A/B variants B to D (the body is A).
    variant_bodies: tuple[str, ...] = ()
    #: A/B settings as the model names them (ab_mode, ab_split, ab_test_share, ...).
    ab: Mapping[str, Any] = field(default_factory=dict)
    channel: str = Channel.SMS
    #: A message template, by name or id: its text goes when the body is empty.
    template: str | int | None = None
    #: WhatsApp: the provider's approved template id (a template carrying it is made once).
    whatsapp_template: str = ""
    #: Names of each audience part (AUDIENCE_FIELDS), e.g. {"groups": ["Newsletter"]}.
    audience: Mapping[str, Sequence[str]] = field(default_factory=dict)
    sender: str = ""
    #: "N/D" (at most N messages per contact in D days), "off" or "house".
    frequency_cap: str = FrequencyCap.HOUSE
    track_links: bool = True
    link_utm: bool = True
    #: A naive time is read in the campaign's time zone, as the builder reads it.
    scheduled_at: datetime | None = None
    time_zone: str = ""


def create(draft: Draft, by: Any = None, spelling: Mapping[str, str] | None = None) -> Campaign:
    """Save `draft` as a new draft campaign created by `by`; Refused, or the model's
    ValidationError, when something is wrong (nothing is saved then)."""
    spelled = _Spelling(spelling or {})
    account = provider_named(draft.provider)
    template = template_named(draft.template, draft.channel) if draft.template else None
    approved_id = draft.whatsapp_template or (template.whatsapp_template_id if template else "")
    check_channel(account, draft.channel, approved_id, spelled)
    audience = audience_named(draft.audience)
    campaign = Campaign(
        name=draft.name,
        channel=draft.channel,
        provider_account=account,
        sender=draft.sender,
        body=draft.body,
        variant_bodies=list(draft.variant_bodies),
        **draft.ab,
        track_links=draft.track_links,
        link_utm=draft.link_utm,
        created_by=by,
        template=template,
        **frequency_cap(draft.frequency_cap, by, spelled),
        **_schedule(draft),
    )
    with transaction.atomic():
        if draft.whatsapp_template:
            campaign.template = whatsapp_template(draft.whatsapp_template, draft.body)
        validate(campaign)
        campaign.save()
        for name, rows in audience.items():
            getattr(campaign, name).set(rows)
        campaign.note_authors(by, before="")
    return campaign


class _Spelling:
    """How a door names the fields its refusals speak of (the CLI: flags)."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names

    def __call__(self, field_name: str) -> str:
        return self.names.get(field_name, field_name)


def provider_named(name: str) -> ProviderAccount:
    try:
        return ProviderAccount.objects.get(name=name)
    except ProviderAccount.DoesNotExist:
        known = ", ".join(ProviderAccount.objects.order_by("name").values_list("name", flat=True))
        hint = f"known: {known}" if known else "none yet; add one with `manage.py provider add`"
        raise Refused("provider", f"no provider account named {name!r} ({hint})") from None


def template_named(ref: str | int, channel: str | None = None) -> MessageTemplate:
    """The message template called `ref` (or with that id), if it is one for `channel`
    (any channel when None)."""
    found = MessageTemplate.objects.filter(name=str(ref)).first()
    if found is None and str(ref).isdigit() and int(ref) <= MAX_ID:
        found = MessageTemplate.objects.filter(pk=int(ref)).first()
    if found is None:
        raise Refused("template", f"no message template named {str(ref)[:100]!r}")
    if channel is not None and found.channel != channel:
        raise Refused("template", f"template {found.name!r} is for {found.channel} messages")
    return found


def check_channel(
    account: ProviderAccount, channel: str, approved_id: str, spelled: _Spelling
) -> None:
    """WhatsApp takes an approved template id, and nothing else does; the account must
    send the channel."""
    if channel == Channel.WHATSAPP and not approved_id:
        raise Refused(
            "whatsapp_template",
            f"{spelled('channel')} whatsapp needs {spelled('whatsapp_template')} "
            "(the approved template id)",
        )
    if channel != Channel.WHATSAPP and approved_id:
        raise Refused(
            "whatsapp_template",
            f"{spelled('whatsapp_template')} is for WhatsApp campaigns "
            f"({spelled('channel')} whatsapp)",
        )
    if channel not in backend_class(account.backend).channels:
        raise Refused("channel", f"{account} ({account.backend}) cannot send {channel} messages")


def rows_named(model: type[Named], names: Iterable[str], noun: str, field_name: str) -> list[Named]:
    """The rows named `names`; a missing one is refused, never silently created."""
    wanted = list(dict.fromkeys(names))
    found = {row.name: row for row in model._default_manager.filter(name__in=wanted)}
    missing = [name for name in wanted if name not in found]
    if missing:
        plural = noun if len(missing) == 1 else noun + "s"
        raise Refused(field_name, f"no {plural} named {', '.join(map(repr, missing))}")
    return [found[name] for name in wanted]


def audience_named(names: Mapping[str, Sequence[str]]) -> dict[str, list[Any]]:
    """Each audience part's rows (AUDIENCE_FIELDS, in their order) from their names."""
    return {
        part: rows_named(model, names.get(part, ()), noun, part)
        for part, (model, noun) in AUDIENCE_MODELS.items()
    }


def frequency_cap(text: str, user: Any, spelled: _Spelling) -> dict[str, Any]:
    """The campaign's cap fields from `N/D`, `off` or `house`; only a user allowed to
    override the house cap may choose anything but `house`."""
    wanted = text.strip().lower()
    if wanted == FrequencyCap.HOUSE:
        return {"frequency_cap": FrequencyCap.HOUSE}
    found = FREQUENCY_CAP.fullmatch(wanted)
    if wanted != FrequencyCap.OFF and not found:
        raise Refused(
            "frequency_cap",
            f"{spelled('frequency_cap')} is N/D (at most N messages in D days), off or house, "
            f"not {text!r}",
        )
    if not may_override(user):
        who = (
            f"user {user.get_username()!r}"
            if user
            else f"a campaign created without {spelled('created_by')}"
        )
        raise Refused(
            "frequency_cap",
            f"{spelled('frequency_cap')} {text}: {who} may not override the house frequency "
            f"cap (it takes the {OVERRIDE_PERMISSION} permission, which the Approvers role has)",
        )
    if found is None:
        return {"frequency_cap": FrequencyCap.OFF}
    return {
        "frequency_cap": FrequencyCap.OWN,
        "cap_messages": int(found["messages"]),
        "cap_days": int(found["days"]),
    }


def _schedule(draft: Draft) -> dict[str, Any]:
    """The start time (aware) and the time zone it and quiet hours are read in."""
    found: dict[str, Any] = {}
    if draft.time_zone:
        try:
            validate_time_zone(draft.time_zone)
        except ValidationError as exc:
            raise Refused("time_zone", " ".join(exc.messages)) from None
        found["time_zone"] = draft.time_zone
    at = draft.scheduled_at
    if at is None:
        return found
    zone = draft.time_zone or Campaign._meta.get_field("time_zone").get_default()
    try:
        found["scheduled_at"] = in_zone(at, zone) if timezone.is_naive(at) else at.astimezone(UTC)
    except ValidationError as exc:
        raise Refused("scheduled_at", " ".join(exc.messages)) from None
    except (OverflowError, ValueError):
        raise Refused("scheduled_at", "that time is out of range") from None
    return found


def whatsapp_template(template_id: str, body: str) -> MessageTemplate:
    """The template carrying this approved id, made on first use."""
    existing = MessageTemplate.objects.filter(
        channel=Channel.WHATSAPP, whatsapp_template_id=template_id
    ).first()
    if existing:
        return existing
    template = MessageTemplate(
        name=f"WhatsApp {template_id}"[:100],
        channel=Channel.WHATSAPP,
        body=body,
        whatsapp_template_id=template_id,
    )
    validate(template)
    template.save()
    return template


def validate(instance: models.Model) -> None:
    """The model's own rules; created_by may be empty (a script acting as nobody)."""
    instance.full_clean(exclude=["created_by"], validate_unique=True)
