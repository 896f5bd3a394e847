"""API routes: messages (list, get with status history), inbound messages, and the
transactional send.

`POST /messages` goes through messaging.transactional: one Message of no campaign, sent
by the engine like every other (opt-outs checked again at send time, the account's shared
pace, retries, receipts). With an `Idempotency-Key` header a retry gets the first message
back and nothing is sent twice (api.idempotency). Reading needs campaigns:read and the
view permissions the dashboard's results and inbox ask for; sending needs messages:send
and the send_transactional permission (marketers hold it).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, Header, Query, Router, Schema
from pydantic import AfterValidator, BaseModel, ConfigDict

from api import idempotency
from api.auth import require
from api.errors import ApiError, invalid, not_found
from api.models import Scope
from api.pagination import page
from campaigns import drafts
from campaigns.models import MessageTemplate
from contacts.models import Channel
from contacts.phones import InvalidPhoneNumber, to_e164
from contacts.storable import storable_text
from messaging import transactional
from messaging.models import InboundMessage, Message, StatusEvent
from messaging.rendering import parameter

router = Router(tags=["messages"])

VIEW_MESSAGES = "messaging.view_message"
VIEW_INBOUND = "messaging.view_inboundmessage"
SEND = "messaging.send_transactional"
#: The largest id a database column holds: a bigger one names nothing (and would not fit).
MAX_ID = 2**63 - 1


def _storable(text: str) -> str:
    if not storable_text(text):
        raise ValueError("holds NUL or unpaired surrogate characters, which cannot be stored")
    return text


#: Text a database can store: a NUL would reach PostgreSQL as an error, not as a refusal.
Text = Annotated[str, AfterValidator(_storable)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Kind = Literal["campaign", "transactional", "reply", "test"]


# Schemas. Those of the transactional send's path are plain pydantic models: ninja's
# Schema reads Django objects as well as dicts, which cost a send ten times as much to
# validate (70 against 7 us for its answer); every one of these is given a dict.


class MessageOut(BaseModel):
    id: int
    kind: Kind = Field(description="What it was sent as.")
    campaign: int | None
    variant: str = Field(description="Its campaign's A/B variant (A to D); empty: none.")
    channel: str
    to: str = Field(description="E.164.")
    contact: int | None
    provider: str = Field(description="The provider account's name.")
    sender: str
    body: str
    whatsapp_template: str
    parameters: list[str]
    encoding: str = Field(description="gsm7 or ucs2.")
    segments: int
    cost: Decimal | None = Field(description="Segments at the account's price, or the provider's.")
    currency: str
    status: str
    skip_reason: str
    error_code: str
    error_message: str
    attempts: int
    provider_message_id: str
    requested_by: str | None = Field(description="Transactional: the token's user.")
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None


class HistoryOut(BaseModel):
    status: str
    at: datetime
    source: Literal["herald", "provider"] = Field(
        description="herald: what the message row says; provider: a delivery report or lookup."
    )
    error_code: str
    note: str


class MessageDetailOut(MessageOut):
    history: list[HistoryOut] = Field(description="In the order it happened.")


class MessagePage(BaseModel):
    results: list[MessageOut]
    next_cursor: str | None


class MessageFilters(Schema):
    campaign: Id | None = Field(None, description="Messages of this campaign.")
    kind: Kind | None = None
    status: Message.Status | None = None
    phone: Text | None = Field(None, description="To this number, in any form.")
    since: datetime | None = Field(None, description="Created at or after (UTC if no offset).")
    cursor: Text | None = None
    limit: int | None = Field(None, description="1 to 1,000; 100 when not given.")


class InboundOut(Schema):
    id: int
    provider: str
    provider_message_id: str
    channel: str
    from_: str = Field(alias="from", description="Who sent it (E.164 when a number).")
    to: str
    body: str
    body_truncated: bool
    received_at: datetime
    contact: int | None
    campaign: int | None = Field(description="The campaign it most likely answers.")
    answers: int | None = Field(description="The message it most likely answers.")
    action: str = Field(description="none, opt_out, opt_in or help.")
    keyword: str
    possible_opt_out: bool
    handled: bool


class InboundPage(Schema):
    results: list[InboundOut]
    next_cursor: str | None


class InboundFilters(Schema):
    since: datetime | None = Field(None, description="Received at or after (UTC if no offset).")
    phone: Text | None = Field(None, description="From this number, in any form.")
    action: InboundMessage.Action | None = None
    campaign: Id | None = Field(None, description="Put down to this campaign.")
    cursor: Text | None = None
    limit: int | None = Field(None, description="1 to 1,000; 100 when not given.")


class SendIn(BaseModel):
    """One message to one number: a `body`, or a message `template` (by id or name) whose
    `{{variables}}` are filled from `variables`, then from the number's contact."""

    model_config = ConfigDict(extra="forbid")

    to: Text = Field(description="Any form: +44 7911 123456, or 07911 123456 read in GB.")
    body: Text | None = Field(None, description="The text; {{name}} reads variables.")
    template: Id | Text | None = Field(None, description="A message template's id or name.")
    variables: dict[Text, Text | int | float] = Field(default_factory=dict)
    channel: Channel | None = Field(None, description="sms (default) or the template's.")
    whatsapp_template: Text | None = Field(
        None,
        description="WhatsApp: the provider's approved template id (unless `template` has one).",
    )
    parameters: list[Text] = Field(
        default_factory=list, description="WhatsApp: the approved template's parameters, in order."
    )
    provider: Text | None = Field(
        None, description="The provider account's name; default: the only active one."
    )
    sender: Text | None = Field(None, description="Default: the account's sender.")


# Reading.


def kind_of(message: Message) -> str:
    if message.campaign_id is not None:
        return "campaign"
    if message.is_transactional:
        return "transactional"
    if message.in_reply_to_id is not None:
        return "reply"
    return "test"


def shown(message: Message) -> dict[str, Any]:
    account = message.provider_account
    by = message.requested_by
    return {
        "id": message.pk,
        "kind": kind_of(message),
        "campaign": message.campaign_id,
        "variant": message.variant,
        "channel": message.channel,
        "to": message.phone,
        "contact": message.contact_id,
        "provider": account.name,
        "sender": message.sender,
        "body": message.body,
        "whatsapp_template": message.template_id,
        "parameters": [str(p) for p in message.template_params or []],
        "encoding": message.encoding,
        "segments": message.segments,
        "cost": message.cost,
        "currency": account.currency,
        "status": message.status,
        "skip_reason": message.skip_reason,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "attempts": message.attempts,
        "provider_message_id": message.provider_message_id,
        "requested_by": by.get_username() if by is not None else None,
        "created_at": message.created_at,
        "updated_at": message.updated_at,
        "sent_at": message.sent_at,
        "delivered_at": message.delivered_at,
    }


def history(message: Message) -> list[dict[str, Any]]:
    """What happened to it: queued, handed over, each provider report (by their time), and
    the row's own end when no report said it."""
    entries = [_entry(Message.Status.PENDING, message.created_at, note="queued")]
    if message.sent_at is not None:
        entries.append(_entry(Message.Status.SENT, message.sent_at, note="accepted by provider"))
    reports = list(StatusEvent.objects.filter(message=message).order_by("occurred_at", "pk"))
    entries += [
        _entry(r.status, r.occurred_at, "provider", r.error_code, f"report {r.event_id}")
        for r in reports
    ]
    # The row's own end, unless a report said it already (delivered, failed by report).
    if message.status not in (Message.Status.PENDING, Message.Status.SENT) and not any(
        r.status == message.status for r in reports
    ):
        note = message.skip_reason or message.error_message
        at, code = message.updated_at, message.error_code
        entries.append(_entry(message.status, at, "herald", code, note))
    # In the order things happen, not by the times: a provider's clock (often to the
    # second) may put its report a moment before our own stamp of the hand-over.
    return entries


def _entry(
    status: str, at: datetime, source: str = "herald", error_code: str = "", note: str = ""
) -> dict[str, Any]:
    return {"status": status, "at": at, "source": source, "error_code": error_code, "note": note}


def moment(value: datetime, name: str) -> datetime:
    """`value` as an aware time (UTC when it names no offset), or 422."""
    try:
        aware = value if timezone.is_aware(value) else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC)
    except (OverflowError, ValueError):
        raise invalid("That time is out of range.", {name: ["out of range"]}) from None


def e164(text: str, name: str) -> str:
    try:
        return to_e164(text, settings.HERALD_DEFAULT_REGION)
    except InvalidPhoneNumber as exc:
        raise invalid("Not a valid phone number.", {name: [str(exc)]}) from None


def _messages() -> QuerySet[Message]:
    return Message.objects.select_related("provider_account", "requested_by")


KINDS: dict[str, Q] = {
    "campaign": Q(campaign__isnull=False),
    "transactional": Q(campaign__isnull=True, is_transactional=True),
    "reply": Q(campaign__isnull=True, is_transactional=False, in_reply_to__isnull=False),
    "test": Q(campaign__isnull=True, is_transactional=False, in_reply_to__isnull=True),
}


def filtered(filters: MessageFilters) -> QuerySet[Message]:
    messages = _messages()
    if filters.campaign is not None:
        messages = messages.filter(campaign_id=filters.campaign)
    if filters.kind is not None:
        messages = messages.filter(KINDS[filters.kind])
    if filters.status is not None:
        messages = messages.filter(status=filters.status)
    if filters.phone is not None:
        messages = messages.filter(phone=e164(filters.phone, "phone"))
    if filters.since is not None:
        messages = messages.filter(created_at__gte=moment(filters.since, "since"))
    return messages


@router.get("/messages", response=MessagePage, summary="List messages")
def list_messages(request: HttpRequest, filters: Query[MessageFilters]) -> dict[str, Any]:
    """Newest first; filters combine. `phone` is best with `campaign` or `since` on a large
    history: numbers are not indexed on their own."""
    require(request, Scope.CAMPAIGNS_READ, VIEW_MESSAGES)
    return page(filtered(filters), filters.cursor, filters.limit, shown)


@router.get(
    "/messages/{message_id}",
    response=MessageDetailOut,
    summary="Get a message with its history",
)
def get_message(request: HttpRequest, message_id: int) -> dict[str, Any]:
    """With its status history: what the row says (queued, handed over, its end) and each
    delivery report or lookup the provider gave, oldest first."""
    require(request, Scope.CAMPAIGNS_READ, VIEW_MESSAGES)
    message = _messages().filter(pk=message_id).first() if 1 <= message_id <= MAX_ID else None
    if message is None:
        raise not_found("No such message.")
    return {**shown(message), "history": history(message)}


def inbound_shown(reply: InboundMessage) -> dict[str, Any]:
    return {
        "id": reply.pk,
        "provider": reply.provider_account.name,
        "provider_message_id": reply.provider_message_id,
        "channel": reply.channel,
        "from": reply.phone,
        "to": reply.to,
        "body": reply.body,
        "body_truncated": reply.body_truncated,
        "received_at": reply.received_at,
        "contact": reply.contact_id,
        "campaign": reply.campaign_id,
        "answers": reply.answers_id,
        "action": reply.action,
        "keyword": reply.keyword,
        "possible_opt_out": reply.possible_opt_out,
        "handled": reply.handled_at is not None,
    }


@router.get("/inbound", response=InboundPage, by_alias=True, summary="List inbound messages")
def list_inbound(request: HttpRequest, filters: Query[InboundFilters]) -> dict[str, Any]:
    """Replies and other messages people sent us, newest first; filters combine."""
    require(request, Scope.CAMPAIGNS_READ, VIEW_INBOUND)
    replies = InboundMessage.objects.select_related("provider_account")
    if filters.since is not None:
        replies = replies.filter(received_at__gte=moment(filters.since, "since"))
    if filters.phone is not None:
        replies = replies.filter(phone=e164(filters.phone, "phone"))
    if filters.action is not None:
        replies = replies.filter(action=filters.action)
    if filters.campaign is not None:
        replies = replies.filter(campaign_id=filters.campaign)
    return page(replies, filters.cursor, filters.limit, inbound_shown)


# Sending.


def outgoing(payload: SendIn) -> transactional.Outgoing:
    """What the engine is asked to send: the body, or the template's text and WhatsApp id."""
    if (payload.body is None) == (payload.template is None):
        raise invalid("Give the message a body or a template (one of them).", {
            "body": ["give body or template, not both or neither"]
        })  # fmt: skip
    template = _template(payload) if payload.template is not None else None
    channel = payload.channel or (template.channel if template else Channel.SMS)
    body, approved_id, parameters = payload.body or "", "", list(payload.parameters)
    if template is not None:
        body, approved_id = template.body, template.whatsapp_template_id
        parameters = [parameter(spec) for spec in template.whatsapp_parameters] or parameters
    return transactional.Outgoing(
        to=payload.to,
        body=body,
        channel=channel,
        variables={name: str(value) for name, value in payload.variables.items()},
        whatsapp_template=payload.whatsapp_template or approved_id,
        parameters=tuple(parameters),
        provider=payload.provider or "",
        sender=payload.sender or "",
    )


def _template(payload: SendIn) -> MessageTemplate:
    assert payload.template is not None
    try:
        return drafts.template_named(payload.template, payload.channel)
    except drafts.Refused as refused:
        raise invalid(f"Not a template for this message: {refused.text}.", {
            "template": [refused.text]
        }) from None  # fmt: skip


def _prepared(payload: SendIn, user: Any) -> Message:
    try:
        return transactional.prepared(outgoing(payload), by=user)
    except transactional.Refused as refused:
        raise ApiError(422, refused.code, refused.message, refused.details) from None


@router.post(
    "/messages",
    response={202: MessageOut},
    summary="Send a transactional message",
)
def send_message(
    request: HttpRequest,
    payload: SendIn,
    response: HttpResponse,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    """Queued at once and answered 202; the engine sends it. A number opted out of the
    channel, or erased, is refused (422 `opted_out` / `erased`) and nothing is queued.
    With an `Idempotency-Key` (kept 24 h), a retry of the same request answers with the
    first message (`Idempotent-Replayed: true`) and sends nothing; the same key with a
    different request is 409 `conflict`."""
    user = require(request, Scope.MESSAGES_SEND, SEND)
    key = idempotency.checked_key(idempotency_key)
    if not key:
        message = transactional.write(_prepared(payload, user))
    else:
        digest = idempotency.request_hash(payload.model_dump(mode="json"))
        prepare = functools.partial(_prepared, payload, user)
        sent = idempotency.once(user, key, digest, prepare, transactional.write)
        message = sent.message
        if sent.replayed:
            response["Idempotent-Replayed"] = "true"
    return shown(message)
