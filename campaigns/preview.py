"""What a campaign will send and cost, before anyone approves it.

The whole audience is counted in SQL; segments are worked out once per distinct
combination of the values the body uses (GROUP BY those fields), so a million
recipients whose messages differ only by a first name cost a few thousand renders.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, OuterRef, QuerySet
from django.db.models.fields.json import KeyTextTransform

from campaigns.models import Campaign
from contacts.models import Contact, OptOut
from messaging.rendering import encoding_of, placeholders, render, segments_of, ucs2_characters

SAMPLES = 3


@dataclass
class Sample:
    contact: str
    body: str
    encoding: str
    segments: int


@dataclass
class Estimate:
    audience: int = 0
    opted_out: int = 0
    sendable: int = 0
    segments: int = 0
    cost: Decimal = Decimal(0)
    currency: str = ""
    ucs2_messages: int = 0
    ucs2_characters: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cost"] = str(self.cost)
        return data


def estimate(campaign: Campaign, samples: int = SAMPLES) -> Estimate:
    """Audience after suppression, segments and cost of the whole campaign, with samples."""
    body = campaign.message_body
    account = campaign.provider_account
    audience = campaign.audience()
    suppressed = OptOut.objects.filter(phone=OuterRef("phone"), channel=campaign.channel)
    sendable = audience.exclude(Exists(suppressed))
    result = Estimate(currency=account.currency)
    result.audience = audience.count()
    result.sendable = sendable.count()
    result.opted_out = result.audience - result.sendable
    used = placeholders(body)
    characters: dict[str, None] = {}
    for fields, count in _distinct_fields(sendable, used):
        text = render(body, fields)
        encoding, segments = segments_of(text)
        result.segments += segments * count
        if encoding != "gsm7":
            result.ucs2_messages += count
            characters.update(dict.fromkeys(ucs2_characters(text)))
    result.ucs2_characters = list(characters)
    result.cost = result.segments * Decimal(str(account.price_per_segment))
    for contact in sendable.order_by("pk")[:samples]:
        text = render(body, contact.template_fields())
        _, segments = segments_of(text)
        label = " ".join(filter(None, [contact.first_name, contact.last_name])) or "(no name)"
        result.samples.append(Sample(label, text, encoding_of(text), segments))
    return result


def _distinct_fields(
    contacts: QuerySet[Contact], names: list[str]
) -> list[tuple[dict[str, str], int]]:
    """(the values of `names`, how many contacts have them), one per distinct combination."""
    if not names:
        return [({}, contacts.count())]
    columns: dict[str, Any] = {}
    for name in names:
        if name in Contact.TEMPLATE_FIELDS:
            continue
        columns[f"attr_{name}"] = KeyTextTransform(name, "attributes")
    fixed = [n for n in names if n in Contact.TEMPLATE_FIELDS]
    grouped = (
        contacts.order_by()
        .annotate(**columns)
        .values(*fixed, *columns)
        .annotate(n=Count("pk"))
        .iterator(chunk_size=5000)
    )
    out = []
    for row in grouped:
        fields = {name: row[name] or "" for name in fixed}
        for name in names:
            if name not in Contact.TEMPLATE_FIELDS:
                value = row[f"attr_{name}"]
                fields[name] = "" if value is None else str(value)
        out.append((fields, row["n"]))
    return out
