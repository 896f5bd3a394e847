"""The inbox's reading of replies: conversations by sender number, one number's thread,
the unread count of the menu, and whether WhatsApp free text may answer a number now.

Pages walk the replies newest first by the inbound_received index and stop as soon as
they hold a page of numbers; everything shown about those numbers is then one grouped
query by the inbound_phone_received index. A page is never a GROUP BY over every reply.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.http import QueryDict
from django.utils import timezone

from audit.models import AuditEvent
from campaigns.content import Content
from campaigns.models import Campaign, MessageTemplate
from contacts.models import Channel, Contact
from contacts.phones import redact
from messaging.exceptions import ProviderError
from messaging.inbound import queue_reply, sender_of
from messaging.models import InboundMessage, Message, ProviderAccount

logger = logging.getLogger(__name__)

CONVERSATIONS_PER_PAGE = 25
#: Replies read at a time while looking for a page's numbers.
SCAN_CHUNK = 200
#: A thread shows this many of the latest replies and of the latest messages to the number.
THREAD_MOST = 100
PREVIEW_CHARS = 140
#: WhatsApp lets a business write freely this long after the customer's last message.
WHATSAPP_WINDOW = timedelta(hours=24)
#: The gateway's list of open conversations is asked at most this often per account.
OPEN_CONVERSATIONS_SECONDS = 30
#: The menu's unread count is shared by every page for this long.
UNREAD_SECONDS = 5
UNREAD_KEY = "herald:inbox:unread"


# --- the list -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxFilters:
    """The list's filters, as GET parameters (kept in every link of the page)."""

    campaign: int | None = None
    opt_outs: bool = False
    possible: bool = False
    unhandled: bool = False

    @classmethod
    def from_query(cls, query: QueryDict) -> InboxFilters:
        campaign = query.get("campaign", "")
        return cls(
            campaign=int(campaign) if campaign.isdigit() else None,
            opt_outs=query.get("opt_outs") == "1",
            possible=query.get("possible") == "1",
            unhandled=query.get("unhandled") == "1",
        )

    def apply(self, replies: QuerySet[InboundMessage]) -> QuerySet[InboundMessage]:
        if self.campaign is not None:
            replies = replies.filter(campaign_id=self.campaign)
        if self.opt_outs:
            replies = replies.filter(action=InboundMessage.Action.OPT_OUT)
        if self.possible:
            replies = replies.filter(possible_opt_out=True)
        if self.unhandled:
            replies = replies.filter(handled_at__isnull=True)
        return replies

    @property
    def params(self) -> dict[str, str]:
        """The filters as query parameters, only those set."""
        params = {"campaign": "" if self.campaign is None else str(self.campaign)}
        params |= {
            name: "1" for name in ("opt_outs", "possible", "unhandled") if getattr(self, name)
        }
        return {name: value for name, value in params.items() if value}

    @property
    def active(self) -> bool:
        return bool(self.params)


@dataclass
class Conversation:
    """One number's replies, as a row of the list."""

    phone: str
    latest: InboundMessage
    contact: Contact | None
    replies: int = 0
    unread: int = 0
    unhandled: int = 0
    opt_outs: int = 0
    opt_ins: int = 0
    helps: int = 0
    possible: int = 0

    @property
    def name(self) -> str:
        if self.contact is None:
            return "Unknown number"
        return f"{self.contact.first_name} {self.contact.last_name}".strip() or "(no name)"

    @property
    def preview(self) -> str:
        body = " ".join(self.latest.body.split())
        return body if len(body) <= PREVIEW_CHARS else body[: PREVIEW_CHARS - 1] + "…"

    @property
    def flags(self) -> list[tuple[str, str]]:
        """(css class, words) of what the conversation holds that a person should see."""
        shown = [
            ("opt-out", "opt-out", self.opt_outs),
            ("opt-in", "opt-in", self.opt_ins),
            ("help", "HELP", self.helps),
            ("possible", "possible opt-out", self.possible),
            ("unhandled", "unhandled", self.unhandled),
        ]
        return [(kind, words) for kind, words, n in shown if n]


@dataclass
class ConversationPage:
    conversations: list[Conversation]
    #: The reply to pass as `older` for the next page; None on the last page.
    older: int | None
    first: bool


def conversation_page(filters: InboxFilters, older: int | None = None) -> ConversationPage:
    """A page of conversations, newest activity first, starting after the one whose latest
    matching reply is `older` (the previous page's last)."""
    replies = filters.apply(InboundMessage.objects.all())
    cursor = None
    if older is not None:
        cursor = InboundMessage.objects.filter(pk=older).values_list("pk", "received_at").first()
    found = _page_numbers(replies, cursor, CONVERSATIONS_PER_PAGE + 1)
    shown = found[:CONVERSATIONS_PER_PAGE]
    conversations = _conversations(shown)
    more = len(found) > CONVERSATIONS_PER_PAGE
    return ConversationPage(conversations, shown[-1][1] if more else None, cursor is None)


def _page_numbers(
    replies: QuerySet[InboundMessage], cursor: tuple[int, datetime] | None, wanted: int
) -> list[tuple[str, int]]:
    """(number, its latest matching reply) of the next `wanted` conversations after `cursor`.

    A number met again further down is the same conversation (skipped); one with a
    matching reply at or above the cursor was on an earlier page (skipped too).
    """
    below, above = replies, replies.none()
    if cursor is not None:
        pk, at = cursor
        below = replies.filter(Q(received_at__lt=at) | Q(received_at=at, pk__lt=pk))
        above = replies.filter(Q(received_at__gt=at) | Q(received_at=at, pk__gte=pk))
    walk = below.order_by("-received_at", "-pk")
    seen: set[str] = set()
    found: list[tuple[str, int]] = []
    while len(found) < wanted:
        chunk = list(walk.exclude(phone__in=seen).values_list("phone", "pk")[:SCAN_CHUNK])
        if not chunk:
            break
        numbers = {number for number, _pk in chunk}
        earlier = set()
        if cursor is not None:  # by inbound_phone_received: a few numbers, looked up at once
            earlier = set(above.filter(phone__in=numbers).values_list("phone", flat=True))
        for number, pk in chunk:
            if number in seen:
                continue
            seen.add(number)
            if number not in earlier:
                found.append((number, pk))
    return found[:wanted]


def _conversations(numbers: list[tuple[str, int]]) -> list[Conversation]:
    """The rows of a page: three queries, whatever its size."""
    phones = [number for number, _pk in numbers]
    latest = InboundMessage.objects.select_related("campaign").in_bulk([pk for _n, pk in numbers])
    contacts = {
        c.phone: c
        for c in Contact.objects.filter(phone__in=phones).only(
            "id", "phone", "first_name", "last_name"
        )
    }
    rows = {
        number: Conversation(number, latest[pk], contacts.get(number)) for number, pk in numbers
    }
    for figures in _figures(phones):
        conversation = rows[figures.pop("phone")]
        for name, value in figures.items():
            setattr(conversation, name, value)
    return list(rows.values())


def _figures(phones: list[str]) -> Any:
    """Counts over each number's replies (all of them, whatever the filters): one GROUP BY."""
    action = InboundMessage.Action
    return (
        InboundMessage.objects.filter(phone__in=phones)
        .order_by()
        .values("phone")
        .annotate(
            replies=Count("pk"),
            unread=Count("pk", filter=Q(read_at__isnull=True)),
            unhandled=Count("pk", filter=Q(handled_at__isnull=True)),
            opt_outs=Count("pk", filter=Q(action=action.OPT_OUT)),
            opt_ins=Count("pk", filter=Q(action=action.OPT_IN)),
            helps=Count("pk", filter=Q(action=action.HELP)),
            possible=Count("pk", filter=Q(possible_opt_out=True)),
        )
    )


def campaigns_with_replies() -> list[Campaign]:
    """The campaign filter's choices: campaigns replies were put down to, newest first."""
    ids = (
        InboundMessage.objects.filter(campaign__isnull=False)
        .order_by()
        .values("campaign_id")
        .distinct()
    )
    return list(Campaign.objects.filter(pk__in=ids).only("id", "name").order_by("-pk"))


def unread_count() -> int:
    """Replies nobody has opened yet (the inbound_unread index), shared for a few seconds."""
    count = cache.get(UNREAD_KEY)
    if count is None:
        count = InboundMessage.objects.filter(read_at__isnull=True).count()
        cache.set(UNREAD_KEY, count, UNREAD_SECONDS)
    return int(count)


# --- replies per campaign (its page, the reports) -----------------------------------------


@dataclass
class ReplyFigures:
    """Replies and opt-outs put down to a campaign, and their share of what it delivered."""

    replies: int = 0
    opt_outs: int = 0
    delivered: int = 0
    sent: int = 0

    def add(self, other: ReplyFigures) -> None:
        self.replies += other.replies
        self.opt_outs += other.opt_outs
        self.delivered += other.delivered
        self.sent += other.sent

    @staticmethod
    def percent(count: int, of: int) -> float | None:
        return round(100 * count / of, 1) if of else None

    @property
    def reply_percent(self) -> float | None:
        """Replies per delivered message: only a delivered message can be answered."""
        return self.percent(self.replies, self.delivered)

    @property
    def opt_out_percent(self) -> float | None:
        return self.percent(self.opt_outs, self.delivered)

    @property
    def reply_percent_of_sent(self) -> float | None:
        """Per message handed to the provider: for gateways that send no delivery reports."""
        return self.percent(self.replies, self.sent)

    @property
    def opt_out_percent_of_sent(self) -> float | None:
        return self.percent(self.opt_outs, self.sent)


def replies_by_campaign(campaign_ids: list[int]) -> dict[int, ReplyFigures]:
    """Replies and opt-outs per campaign, one GROUP BY over the inbound_campaign_action index."""
    found = {pk: ReplyFigures() for pk in campaign_ids}
    rows = (
        InboundMessage.objects.filter(campaign_id__in=campaign_ids)
        .order_by()
        .values("campaign_id")
        .annotate(
            replies=Count("pk"),
            opt_outs=Count("pk", filter=Q(action=InboundMessage.Action.OPT_OUT)),
        )
    )
    for row in rows:
        found[row["campaign_id"]] = ReplyFigures(row["replies"], row["opt_outs"])
    return found


# --- one conversation ---------------------------------------------------------------------


@dataclass
class Entry:
    """One message of a thread: theirs (a reply) or ours (a Message)."""

    at: datetime
    reply: InboundMessage | None = None
    message: Message | None = None

    @property
    def ours(self) -> bool:
        return self.message is not None


@dataclass
class Thread:
    """Everything said between us and one number, oldest first."""

    phone: str
    contact: Contact | None
    replies: list[InboundMessage]
    entries: list[Entry] = field(default_factory=list)

    @property
    def latest(self) -> InboundMessage:
        return self.replies[-1]

    @property
    def name(self) -> str:
        return Conversation(self.phone, self.latest, self.contact).name

    @property
    def answerable(self) -> bool:
        """A phone number can be answered; a short code or a sender name cannot."""
        return sender_of(self.phone)[1]

    @property
    def unhandled(self) -> list[InboundMessage]:
        return [reply for reply in self.replies if reply.handled_at is None]

    @property
    def possible_opt_outs(self) -> list[InboundMessage]:
        return [reply for reply in self.replies if reply.possible_opt_out]

    def latest_on(self) -> dict[str, InboundMessage]:
        """The latest reply on each channel the number wrote on: what an answer answers."""
        return {reply.channel: reply for reply in self.replies}


def thread_of(reply: InboundMessage) -> Thread:
    """`reply`'s number's latest replies and our latest messages to it, oldest first."""
    phone = reply.phone
    replies = list(
        InboundMessage.objects.filter(phone=phone)
        .select_related("campaign", "handled_by")
        .order_by("-received_at", "-pk")[:THREAD_MOST]
    )[::-1]
    contact = (
        Contact.objects.filter(phone=phone)
        .only("id", "phone", "first_name", "last_name", "attributes", "email")
        .first()
    )
    thread = Thread(phone, contact, replies)
    ours = _ours(contact, [r.pk for r in replies])
    entries = [Entry(r.received_at, reply=r) for r in replies]
    # A campaign's message is built long before it goes: it is placed by when it was sent.
    entries += [Entry(m.sent_at or m.created_at, message=m) for m in ours]
    thread.entries = sorted(entries, key=lambda e: (e.at, e.ours))
    return thread


def _ours(contact: Contact | None, reply_ids: list[int]) -> list[Message]:
    """Our latest messages to the number: its contact's (message_contact_created) and the
    answers to these replies. Answers name no campaign, so message_campaign_status finds
    them among the few rows without one; in_reply_to itself has no index."""
    fields = (
        "id",
        "created_at",
        "sent_at",
        "channel",
        "body",
        "status",
        "template_id",
        "error_message",
    )
    found: dict[int, Message] = {}
    if contact is not None:
        latest = Message.objects.filter(contact=contact, is_test=False).order_by(
            "-created_at", "-pk"
        )
        for message in latest.select_related("campaign").only(
            *fields, "campaign__id", "campaign__name"
        )[:THREAD_MOST]:
            found[message.pk] = message
    answers = Message.objects.filter(campaign__isnull=True, in_reply_to_id__in=reply_ids)
    for message in answers.only(*fields, "campaign_id"):
        found.setdefault(message.pk, message)
    return list(found.values())


def mark_read(phone: str) -> int:
    """Every unread reply of `phone` read now; the menu's count is counted again."""
    read = InboundMessage.objects.filter(phone=phone, read_at__isnull=True).update(
        read_at=timezone.now()
    )
    if read:
        cache.delete(UNREAD_KEY)
    return read


def mark_handled(phone: str, through: int, by: Any) -> int:
    """The number's unhandled replies up to `through` (the latest the page showed: one that
    came after was not seen) handled by `by`; how many. A second click finds none."""
    now = timezone.now()
    handled = InboundMessage.objects.filter(
        phone=phone, pk__lte=through, handled_at__isnull=True
    ).update(handled_at=now, handled_by=by)
    if handled:
        AuditEvent.record(
            AuditEvent.Action.REPLIES_HANDLED,
            actor=by,
            detail={"count": handled, "through": through, "number": redact(phone)},
        )
    # Handling reads them too: a reply marked handled from the list is no longer unread.
    InboundMessage.objects.filter(phone=phone, pk__lte=through, read_at__isnull=True).update(
        read_at=now
    )
    cache.delete(UNREAD_KEY)
    return handled


# --- answering ----------------------------------------------------------------------------


def whatsapp_window_open(reply: InboundMessage) -> bool:
    """Whether WhatsApp free text may go to `reply`'s number through its account now.

    The gateway's own list of open conversations decides when it has one to give;
    otherwise our records: a WhatsApp reply from the number within the last 24 hours.
    """
    numbers = _open_conversations(reply.provider_account)
    if numbers is not None:
        return reply.phone in numbers
    since = timezone.now() - WHATSAPP_WINDOW
    return InboundMessage.objects.filter(
        phone=reply.phone, channel=Channel.WHATSAPP, received_at__gte=since
    ).exists()


def _open_conversations(account: ProviderAccount) -> set[str] | None:
    key = f"herald:whatsapp-open:{account.pk}"
    cached = cache.get(key)
    if cached is not None:
        return set(cached)
    ask = getattr(account.get_backend(), "open_conversations", None)
    if ask is None:
        return None
    try:
        numbers = ask()
    except ProviderError as error:
        logger.warning("open WhatsApp conversations at %s unknown: %s", account.name, error)
        return None
    if not isinstance(numbers, set):
        return None
    cache.set(key, sorted(numbers), OPEN_CONVERSATIONS_SECONDS)
    return numbers


def whatsapp_templates() -> QuerySet[MessageTemplate]:
    """The approved WhatsApp templates a closed window needs, as campaigns pick them."""
    return MessageTemplate.objects.filter(channel=Channel.WHATSAPP).exclude(whatsapp_template_id="")


def reply_ref(form_token: str) -> str:
    """The client_ref of the answer sent from the page holding `form_token`: client_ref is
    unique, so a second post of that page finds the first answer instead of making one."""
    return hashlib.sha256(f"inbox-reply:{form_token}".encode()).hexdigest()[:32]


class AlreadySent(Exception):
    """This page's answer was queued already (a double click, a second tab, the back button)."""

    def __init__(self, message: Message) -> None:
        super().__init__(f"answer {message.pk} was sent from this page already")
        self.message = message


def answer(
    reply: InboundMessage,
    text: str,
    template: MessageTemplate | None,
    form_token: str,
    contact: Contact | None,
    by: Any = None,
) -> Message:
    """Queue our answer to `reply` (messaging.inbound.queue_reply: the engine sends it, with
    rate limits and receipts): `text`, or `template` rendered for the number's contact."""
    ref = reply_ref(form_token) if form_token else Message.new_client_ref()
    earlier = Message.objects.filter(client_ref=ref).first()
    if earlier is not None:
        raise AlreadySent(earlier)
    body, template_id, parameters = text, "", []
    if template is not None:
        content = Content(
            body=template.body,
            whatsapp_template_id=template.whatsapp_template_id,
            parameters=tuple(template.whatsapp_parameters),
        )
        rendered = content.render(contact.template_fields() if contact else {})
        body, template_id = rendered.body, template.whatsapp_template_id
        parameters = list(rendered.parameters)
    try:
        with transaction.atomic():
            message = queue_reply(
                reply, body, template_id=template_id, template_params=parameters, client_ref=ref
            )
            AuditEvent.record(
                AuditEvent.Action.INBOX_REPLY,
                actor=by,
                obj=reply,
                detail={
                    "reply": reply.pk,
                    "message": message.pk,
                    "channel": reply.channel,
                    "number": redact(reply.phone),
                    "template": template_id,
                },
            )
    except IntegrityError:
        # Two posts of one page at once: the other one's answer is the one kept.
        raise AlreadySent(Message.objects.get(client_ref=ref)) from None
    return message
