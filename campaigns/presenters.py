"""A campaign's numbers and labels as its pages show them, in the dashboard and the admin:
the preview, the live counts, the test send, prices and refusals."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from audit.models import AuditEvent
from campaigns.audience import AudienceDefinition
from campaigns.models import Campaign, FrequencyCap, message_counts
from campaigns.preview import estimate, missing_text
from campaigns.testsend import sends_left
from contacts.phones import redact
from messaging.models import Message
from messaging.rendering import ucs2_characters

S = Campaign.Status
ENCODING_LABELS = {"gsm7": "GSM-7", "ucs2": "UCS-2"}
#: Statuses whose counts can still move, so a campaign's page keeps polling them.
LIVE_STATUSES = (S.PENDING_APPROVAL, S.SCHEDULED, S.SENDING, S.PAUSED)
FINAL_STATUSES = (S.COMPLETED, S.CANCELLED)


def error_text(exc: Exception) -> str:
    """What a refused action says to the person who tried it: the model's own words."""
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


def amount_text(amount: Decimal | str | None) -> str:
    """An amount as prices are read: always the cents, smaller fractions only when there."""
    value = Decimal(str(amount or 0))
    cents = value.quantize(Decimal("0.01"))
    return str(cents) if cents == value else f"{value.normalize():f}"


def money(amount: Decimal | str | None, currency: str) -> str:
    """An amount as pages show it: two decimals, thousands grouped, the account's currency
    ("1,234.50 GBP"). Prices per segment and machine output keep every digit (`amount_text`)."""
    cents = Decimal(str(amount or 0)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{cents:,} {currency}".strip()


def rest_text(rest_share: float) -> str:
    """What a test's preview says of the audience beyond its test share."""
    if not rest_share:
        return ""
    return (
        f"The other {rest_share:g}% of those sent it get the winning variant once it is "
        "picked: counted here at the dearest variant."
    )


def decided_text(campaign: Campaign, decision: str) -> str:
    """What an approver is told after approving or rejecting from a queue."""
    if decision == "approve":
        return f"“{campaign}” approved: it is now {campaign.get_status_display().lower()}."
    return f"“{campaign}” rejected: it is a draft again, with your reason."


def code_point(character: str) -> str:
    """U+201C: names characters that look like others (quotes) or like nothing (spaces)."""
    return f"U+{ord(character):04X}"


def highlight(text: str) -> SafeString:
    """`text` escaped, each character that forces UCS-2 in a <mark> (titled with its code)."""
    forcing = set(ucs2_characters(text))
    return format_html_join(
        "",
        "{}",
        (
            (format_html('<mark title="{}">{}</mark>', code_point(c), c) if c in forcing else c,)
            for c in text
        ),
    )


def part_text(part: dict[str, Any]) -> str:
    """ "Group Newsletter: 1,200", "Excluded: tag VIP: 40"; the name alone without a size."""
    label = f"{part['kind'].capitalize()} {part['name']}"
    if part.get("size") is not None:
        label = f"{label}: {part['size']:,}"
    return f"Excluded: {label[0].lower()}{label[1:]}" if part.get("excluded") else label


def audience_texts(campaign: Campaign, figures: dict[str, Any]) -> list[str]:
    """Each group, tag and segment of the audience with its size as `figures` counted it;
    for an estimate stored before parts were counted, their names as the campaign has them."""
    if "parts" in figures:
        return [part_text(part) for part in figures["parts"]]
    if campaign.pk is None:
        return []
    chosen = AudienceDefinition.of(campaign)
    named = (
        (False, "group", chosen.groups),
        (False, "tag", chosen.tags),
        (False, "segment", chosen.segments),
        (True, "group", chosen.exclude_groups),
        (True, "tag", chosen.exclude_tags),
        (True, "segment", chosen.exclude_segments),
    )
    return [
        part_text({"kind": kind, "name": str(item), "excluded": excluded})
        for excluded, kind, items in named
        for item in items
    ]


def cap_text(campaign: Campaign) -> str:
    """The frequency cap in force: "The house setting: at most 3 per contact in 7 days"."""
    if campaign.frequency_cap == FrequencyCap.OFF:
        return str(FrequencyCap.OFF.label)
    cap = campaign.effective_cap()
    if campaign.frequency_cap == FrequencyCap.OWN and campaign.cap_messages and campaign.cap_days:
        return f"{FrequencyCap.OWN.label}: {cap}"
    return f"{FrequencyCap.HOUSE.label}: {cap or 'off'}"


def preview_of(campaign: Campaign) -> dict[str, Any] | None:
    """Worked out now for a draft; past draft, the estimate stored at submit (what the
    approver approves, never recounted on a page view); None when none was stored."""
    frozen = campaign.status != S.DRAFT
    figures = campaign.estimate if frozen else estimate(campaign).as_json()
    if not figures:
        return None
    counted = ("audience", "opted_out", "sendable", "segments", "ucs2_messages")
    currency = figures.get("currency", "")
    return {
        **dict.fromkeys(counted, 0),
        **figures,
        "frozen": frozen,
        "currency": currency,
        "parts": audience_texts(campaign, figures),
        "parts_sized": "parts" in figures,
        "warnings": figures.get("warnings", []),
        "cap": cap_text(campaign),
        "cost_shown": money(figures.get("cost"), currency),
        # Skipped for other reasons than an opt-out (shown on a line of its own), when any.
        "other_skips": [
            (Message.SkipReason(reason).label, count)
            for reason, count in figures.get("skipped", {}).items()
            if count and reason != Message.SkipReason.OPTED_OUT
        ],
        "ucs2_code_points": [(c, code_point(c)) for c in figures.get("ucs2_characters", [])],
        # "312 recipients have no {{city}}: …", per variable (estimates from before: none).
        "missing_texts": [missing_text(m) for m in figures.get("missing", [])],
        "variants": [
            {**variant, "cost_shown": money(variant["cost"], currency)}
            for variant in figures.get("variants", [])
        ],
        "rest_text": rest_text(figures.get("rest_share", 0)),
        "samples": [
            {
                **sample,
                "highlighted": highlight(sample["body"]),
                "encoding": ENCODING_LABELS.get(sample["encoding"], sample["encoding"]),
            }
            for sample in figures.get("samples", [])
        ],
    }


def progress_of(campaign: Campaign, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """Messages per status (every status present, counted now unless given) and the share
    done: no longer waiting to go or in doubt."""
    if counts is None:
        counts = message_counts([campaign.pk])[campaign.pk]
    total = sum(counts.values())
    unfinished = sum(counts.get(status, 0) for status in Message.UNFINISHED_STATUSES)
    return {
        "status": campaign.status,
        "status_label": campaign.get_status_display(),
        "counts": counts,
        "total": total,
        "percent_done": round(100 * (total - unfinished) / total, 1) if total else 0,
    }


def live_counts_of(campaign: Campaign) -> dict[str, Any]:
    """The admin's live counts panel: a row per message status, and the final figures."""
    progress = progress_of(campaign)
    final: list[tuple[str, int]] = []
    if campaign.status == S.COMPLETED:
        final = [
            (label, campaign.final_counts[value])
            for value, label in Message.Status.choices
            if campaign.final_counts.get(value)
        ]
    return {
        **progress,
        "url": reverse("admin:campaigns_campaign_progress", args=(campaign.pk,)),
        "rows": [
            (value, label, progress["counts"][value]) for value, label in Message.Status.choices
        ],
        "polling": campaign.status in LIVE_STATUSES,
        "final": final,
        "final_cost": (
            money(campaign.final_cost, campaign.provider_account.currency)
            if campaign.status == S.COMPLETED and campaign.final_cost is not None
            else ""
        ),
    }


#: One unambiguous moment on every page: "3 Dec 2026, 14:05 GMT" (day first, month in
#: words, the zone named), never "12/03/2026" read two ways.
MOMENT_FORMAT = "j M Y, H:i T"


def when(moment: datetime, format_name: str = MOMENT_FORMAT) -> str:
    """`moment` in the site's time zone (TIME_ZONE), as MOMENT_FORMAT unless told."""
    return date_format(timezone.localtime(moment), format_name)


def test_allowance(user: Any) -> str:
    """How many test sends `user` has left this hour, or when the next one may go."""
    left, frees_at = sends_left(user)
    if left:
        return f"You may send {left} more test{pluralize(left)} this hour."
    if frees_at is None:
        return "Test sends are turned off."
    return f"No more tests this hour: the next can go at {when(frees_at, 'TIME_FORMAT')}."


def describe_test(campaign: Campaign) -> str:
    """Whether, when, by whom and to what number a test went, and how it fared."""
    if campaign.test_sent_at is None:
        return "No test sent"
    who = campaign.test_sent_by.get_username() if campaign.test_sent_by else "(deleted user)"
    message = campaign.test_message
    if message is None:
        return f"Sent {when(campaign.test_sent_at)} by {who}"
    return format_html(
        "Sent {} by {} to {}: <strong>{}</strong>",
        when(campaign.test_sent_at),
        who,
        redact(message.phone),
        message.get_status_display().lower(),
    )


def test_sends_of(campaign: Campaign, latest: int = 10) -> list[dict[str, Any]]:
    """The campaign's latest test sends, newest first, from the audit log: when, by whom,
    to what number (redacted) and how each fared."""
    events = list(
        AuditEvent.objects.filter(
            action=AuditEvent.Action.TEST_SEND,
            object_type=campaign._meta.label_lower,
            object_id=str(campaign.pk),
        ).order_by("-at", "-pk")[:latest]
    )
    ids = [event.detail.get("message") for event in events]
    messages = Message.objects.in_bulk([pk for pk in ids if isinstance(pk, int)])
    return [
        {
            "at": event.at,
            "by": event.actor_name or "(deleted user)",
            "to": event.detail.get("to", ""),
            "message": messages.get(pk) if isinstance(pk, int) else None,
        }
        for event, pk in zip(events, ids, strict=True)
    ]
