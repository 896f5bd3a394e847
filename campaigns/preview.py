"""What a campaign will send and cost, before anyone approves it.

The audience and its skip reasons come from the audience rule (campaigns.audience);
segments are worked out once per distinct combination of the values the message uses
(GROUP BY those fields), so a million recipients whose messages differ only by a first
name cost a few thousand renders. Each distinct rendering is also fingerprinted: an
approval binds exactly those texts (campaigns.approval).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from campaigns.audience import AudienceRule
from campaigns.content import Content
from contacts.models import Contact
from messaging.models import Message
from messaging.rendering import segments_of, ucs2_characters

if TYPE_CHECKING:
    from campaigns.models import Campaign

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
    queued: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    segments: int = 0
    cost: Decimal = Decimal(0)
    currency: str = ""
    ucs2_messages: int = 0
    ucs2_characters: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    #: Fingerprints of every distinct rendering (not stored with the figures).
    renderings: set[bytes] = field(default_factory=set, repr=False)

    @property
    def sendable(self) -> int:
        return self.queued

    @property
    def opted_out(self) -> int:
        return self.skipped.get(Message.SkipReason.OPTED_OUT, 0)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["renderings"]
        data["cost"] = str(self.cost)
        # The names pages and stored estimates used before skip reasons were counted apart.
        data["sendable"], data["opted_out"] = self.sendable, self.opted_out
        return data


def estimate(
    campaign: Campaign, samples: int = SAMPLES, contacts: QuerySet[Contact] | None = None
) -> Estimate:
    """Audience by skip reason, segments and cost of the whole campaign, with samples.

    `contacts` stands for the campaign's audience when it is not saved yet (the builder).
    """
    rule = AudienceRule(campaign, contacts)
    content = Content.of(campaign)
    counted = rule.count(content)
    account = campaign.provider_account
    result = Estimate(
        audience=counted.audience,
        queued=counted.queued,
        skipped=counted.skipped,
        currency=account.currency,
    )
    characters: dict[str, None] = {}
    for values, count in counted.groups.items():
        rendered = content.render(content.fields_of(values))
        encoding, segments = segments_of(rendered.body)
        result.renderings.add(rendered.fingerprint)
        result.segments += segments * count
        if encoding != "gsm7":
            result.ucs2_messages += count
            characters.update(dict.fromkeys(ucs2_characters(rendered.body)))
    result.ucs2_characters = list(characters)
    result.cost = result.segments * Decimal(str(account.price_per_segment))
    result.samples = samples_of(rule, content, samples)
    return result


def samples_of(rule: AudienceRule, content: Content, how_many: int = SAMPLES) -> list[Sample]:
    """The first queued recipients' messages, rendered as the build will render them."""
    ids = rule.first_queued(how_many)
    rows = content.with_fields(Contact.objects.filter(pk__in=ids)).order_by("pk")
    found = []
    for first_name, last_name, *values in rows.values_list(
        "first_name", "last_name", *content.columns
    ):
        text = content.render(content.fields_of(values)).body
        encoding, segments = segments_of(text)
        label = " ".join(filter(None, [first_name, last_name])) or "(no name)"
        found.append(Sample(label, text, encoding, segments))
    return found
