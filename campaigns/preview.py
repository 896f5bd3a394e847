"""What a campaign will send and cost, before anyone approves it.

The audience and its skip reasons come from the audience rule (campaigns.audience);
segments are worked out once per distinct combination of the values the message uses
(GROUP BY those fields), so a million recipients whose messages differ only by a first
name cost a few thousand renders. Each distinct rendering is also fingerprinted: an
approval binds exactly those texts (campaigns.approval).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from campaigns.audience import AudienceDefinition, AudiencePart, AudienceRule
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
class VariantEstimate:
    variant: str
    share: float  # percent of the queued
    recipients: int
    segments: int
    cost: str
    sample: str


@dataclass
class MissingVariable:
    """Queued recipients with no value for one variable, and what they get instead."""

    variable: str
    recipients: int
    fallback: str | None  # None: none given, so that part of their message is left empty


def missing_text(missing: dict[str, Any]) -> str:
    """ "312 recipients have no {{city}}: they get “there” instead." (a stored estimate's)"""
    count, name, fallback = missing["recipients"], missing["variable"], missing["fallback"]
    who = f"{count:,} recipient{'s have' if count != 1 else ' has'} no {{{{{name}}}}}"
    if fallback is None:
        return (
            f"{who}: it is left out of their message (they are still sent it). "
            f"Give a fallback to say something else: {{{{{name}|…}}}}."
        )
    if not fallback:
        return f"{who}: it is left empty, as {{{{{name}|}}}} asks."
    return f"{who}: they get “{fallback}” instead."


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
    #: Per variable some queued recipients have no value for, in order of use.
    missing: list[MissingVariable] = field(default_factory=list)
    #: Each group, tag and segment targeted or excluded, with its own size.
    parts: list[AudiencePart] = field(default_factory=list)
    #: What evaluating the segments found worth saying (an attribute no contact has).
    warnings: list[str] = field(default_factory=list)
    #: An A/B campaign's variants: each one's expected share, segments and cost, a sample.
    variants: list[VariantEstimate] = field(default_factory=list)
    #: A test's rest of the audience, in percent (sent the winner; counted at the dearest).
    rest_share: float = 0
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
    campaign: Campaign, samples: int = SAMPLES, definition: AudienceDefinition | None = None
) -> Estimate:
    """Audience by skip reason, segments and cost of the whole campaign, with samples.

    `definition` stands for the campaign's audience when it is not saved yet (the builder).
    """
    if definition is None:
        definition = AudienceDefinition.of(campaign)
    rule = AudienceRule(campaign, definition)
    content = Content.reading(campaign)
    counted = rule.count(content)
    account = campaign.provider_account
    result = Estimate(
        audience=counted.audience,
        queued=counted.queued,
        skipped=counted.skipped,
        currency=account.currency,
        parts=definition.parts(),
        warnings=definition.warnings,
    )
    characters: dict[str, None] = {}
    price = Decimal(str(account.price_per_segment))
    labels = campaign.variant_labels
    if not labels:
        for values, count in counted.groups.items():
            rendered = content.render(content.fields_of(values))
            text = content.sent_text(rendered)  # short links counted, not the long URLs
            encoding, segments = segments_of(text)
            result.renderings.add(rendered.fingerprint)
            result.segments += segments * count
            if encoding != "gsm7":
                result.ucs2_messages += count
                characters.update(dict.fromkeys(ucs2_characters(text)))
    else:
        _estimate_variants(campaign, rule, content, counted.groups, result, characters, price)
    result.ucs2_characters = list(characters)
    result.missing = missing_variables(content, counted.groups)
    result.cost = result.segments * price
    result.samples = samples_of(rule, Content.of(campaign), samples)
    return result


def _estimate_variants(
    campaign: Campaign,
    rule: AudienceRule,
    reading: Content,
    groups: Counter[tuple[Any, ...]],
    result: Estimate,
    characters: dict[str, None],
    price: Decimal,
) -> None:
    """Each A/B variant's share of the queued, and its segments and cost at that share
    (expected: who gets which is decided per recipient as the campaign is built); in a
    test, the rest of the audience is counted at the dearest variant, the winner being
    unknown. Every variant's renderings are bound by the approval."""
    from campaigns.variants import WHOLE, shares

    queued = sum(groups.values())
    share_of = shares(campaign)
    rest = (WHOLE - sum(share_of.values())) / WHOLE
    full: dict[str, int] = {}
    for label in campaign.variant_labels:
        content = Content.of(campaign, label)
        full[label] = 0
        ucs2 = 0
        for values, count in groups.items():
            rendered = content.render(reading.fields_of(values))
            text = content.sent_text(rendered)
            encoding, segments = segments_of(text)
            result.renderings.add(rendered.fingerprint)
            full[label] += segments * count
            if encoding != "gsm7":
                ucs2 += count
                characters.update(dict.fromkeys(ucs2_characters(text)))
        share = share_of[label] / WHOLE
        segments_at_share = round(full[label] * share)
        sample = samples_of(rule, content, 1)
        result.variants.append(
            VariantEstimate(
                variant=label,
                share=round(share * 100, 2),
                recipients=round(queued * share),
                segments=segments_at_share,
                cost=str(segments_at_share * price),
                sample=sample[0].body if sample else content.body,
            )
        )
        result.segments += segments_at_share
        result.ucs2_messages = max(result.ucs2_messages, ucs2)
    if rest > 0:
        result.segments += round(max(full.values()) * rest)
        result.rest_share = round(rest * 100, 2)


def missing_variables(content: Content, groups: Counter[tuple[Any, ...]]) -> list[MissingVariable]:
    """Who has no value for each variable, from the audience already grouped in SQL by the
    values the content reads (so a million contacts are never loaded one by one)."""
    missing: Counter[str] = Counter()
    for values, count in groups.items():
        fields = content.fields_of(values)
        missing.update({name: count for name in content.variables if not fields.get(name)})
    given = content.fallbacks
    return [
        MissingVariable(name, missing[name], given.get(name))
        for name in content.variables
        if missing[name] > 0
    ]


def samples_of(rule: AudienceRule, content: Content, how_many: int = SAMPLES) -> list[Sample]:
    """The first queued recipients' messages, rendered as the build will render them."""
    ids = rule.first_queued(how_many)
    rows = content.with_fields(Contact.objects.filter(pk__in=ids)).order_by("pk")
    found = []
    for first_name, last_name, *values in rows.values_list(
        "first_name", "last_name", *content.columns
    ):
        text = content.sent_text(content.render(content.fields_of(values)))
        encoding, segments = segments_of(text)
        label = " ".join(filter(None, [first_name, last_name])) or "(no name)"
        found.append(Sample(label, text, encoding, segments))
    return found
