"""A reply, however it reached us, handled once: stored, put down to a campaign, acted on.

Every door (BulkSMSRates's signed webhook, the polled message lists, the simulator,
`manage.py inbound record`) hands `receive()` an `Incoming`. In one transaction it

1. stores the reply once per provider message id at the account (a unique constraint:
   a retried webhook or a page read twice finds the first copy and changes nothing),
   its body made storable and cut to HERALD_INBOUND_BODY_MAX_CHARS;
2. finds the contact by number (none: kept as from an unknown number) and the campaign
   of the last message sent to that contact within HERALD_REPLY_ATTRIBUTION_DAYS before
   the reply (by the message_contact_created index: no scan of messages by number);
3. acts on its keyword (messaging.keywords): an opt-out with source "reply" on its
   channel (every channel for STOPALL), the reply kept as evidence and the opt-out
   audited; START / UNSTOP / YES undo only an opt-out that came from a reply; HELP /
   INFO queue the auto-reply, at most once a day per number; a phrase flags it as a
   possible opt-out for a person to confirm (`confirm_opt_out`).

Numbers and bodies are never logged in clear.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_q.tasks import async_task

from audit.models import AuditEvent
from contacts.models import Channel, Contact, ErasedNumber, OptOut
from contacts.phones import InvalidPhoneNumber, redact, to_e164
from messaging import events, keywords
from messaging.dispatch import send_claimed
from messaging.exceptions import ProviderError
from messaging.models import InboundMessage, Message, ProviderAccount
from messaging.rendering import segments_of

logger = logging.getLogger(__name__)

ID_MAX_LENGTH = InboundMessage._meta.get_field("provider_message_id").max_length or 150
PHONE_MAX_LENGTH = InboundMessage._meta.get_field("phone").max_length or 32
HELP_ONCE_PER = timedelta(days=1)


class UnusableInbound(ValueError):
    """A reply that cannot be kept: no sender, or an unknown channel."""


@dataclass(frozen=True)
class Incoming:
    """One reply as a gateway gave it to us."""

    channel: str
    #: The sender as the provider gave it (E.164 or digits; a short code or name is kept too).
    phone: str
    body: str
    #: The provider's id of the message: the dedupe key at the account ("" when none).
    provider_message_id: str = ""
    #: Our number or sender it was sent to.
    to: str = ""
    received_at: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    stored: bool
    duplicate: bool
    action: str
    contact: int | None
    inbound: InboundMessage

    def as_json(self) -> dict[str, Any]:
        return {
            "stored": self.stored,
            "duplicate": self.duplicate,
            "action": self.action,
            "contact": self.contact,
            "reply": self.inbound.pk,
            "campaign": self.inbound.campaign_id,
            "possible_opt_out": self.inbound.possible_opt_out,
        }


def receive(account: ProviderAccount, incoming: Incoming) -> Outcome:
    """Store `incoming` once and act on it; a copy seen before is answered, not applied.

    One query finds a stored copy, the contact and the campaign; a new reply is then one
    INSERT. Called inside a transaction (a webhook's), no savepoint is paid for: a copy
    committed between that query and the INSERT makes the INSERT raise IntegrityError
    for the caller to retry its transaction (messaging.webhooks.base does, once), when
    the query finds the copy. Called alone, a race is settled here.
    """
    if incoming.channel not in Channel.values:
        raise UnusableInbound(f"unknown channel {incoming.channel!r}")
    phone, known_number = sender_of(incoming.phone)
    body, truncated = storable_body(incoming.body)
    inbound = InboundMessage(
        provider_account=account,
        provider_message_id=dedupe_key(incoming.provider_message_id),
        channel=incoming.channel,
        phone=phone,
        to=clean_text(incoming.to)[:PHONE_MAX_LENGTH],
        body=body,
        body_truncated=truncated,
        received_at=when_received(incoming.received_at),
    )
    if connection.in_atomic_block:
        with transaction.atomic(savepoint=False):
            first = _Handling(inbound, known_number).run()
    else:
        try:
            with transaction.atomic():
                first = _Handling(inbound, known_number).run()
        except IntegrityError:
            # The transaction is rolled back: a copy stored meanwhile shows now.
            first = _stored_copy(inbound)
            if first is None:
                raise
    if first is not None:
        logger.debug("reply %s at %s: duplicate", first.pk, account.name)
        return Outcome(False, True, first.action, first.contact_id, first)
    # DEBUG: every door logs its own line at INFO (the webhook's, the poll's, the CLI's).
    logger.debug(
        "reply %s from %s at %s: %s%s",
        inbound.pk,
        redact(phone) if known_number else "a non-number sender",
        account.name,
        inbound.action,
        " (possible opt-out)" if inbound.possible_opt_out else "",
    )
    return Outcome(True, False, inbound.action, inbound.contact_id, inbound)


def _stored_copy(inbound: InboundMessage) -> InboundMessage | None:
    if not inbound.provider_message_id:
        return None
    return InboundMessage.objects.filter(
        provider_account_id=inbound.provider_account_id,
        provider_message_id=inbound.provider_message_id,
    ).first()


#: A provider's time of a reply further from ours than this is not believed (now is used).
TRUSTED_PAST, TRUSTED_FUTURE = timedelta(days=366), timedelta(days=1)


def when_received(given: datetime | None) -> datetime:
    """The provider's time of a reply, or now when it gives none we can believe."""
    now = timezone.now()
    if given is None or timezone.is_naive(given):
        return now
    if not now - TRUSTED_PAST <= given <= now + TRUSTED_FUTURE:
        return now
    return given


def sender_of(raw: str) -> tuple[str, bool]:
    """(the sender to store, whether it is a phone number in E.164)."""
    text = clean_text(raw).strip()
    if not text:
        raise UnusableInbound("no sender")
    # Gateways give international numbers, often without the "+" (Bwatmesaj: digits only).
    candidate = "+" + text if text.isdigit() and not text.startswith("0") else text
    try:
        return to_e164(candidate, settings.HERALD_DEFAULT_REGION), True
    except InvalidPhoneNumber:
        return text[:PHONE_MAX_LENGTH], False


def storable_body(raw: str) -> tuple[str, bool]:
    """The body cut to HERALD_INBOUND_BODY_MAX_CHARS and made storable; whether it was cut."""
    limit = settings.HERALD_INBOUND_BODY_MAX_CHARS
    body = raw if isinstance(raw, str) else ""
    return clean_text(body[:limit]), len(body) > limit


def clean_text(text: str) -> str:
    """`text` without what no database stores: NUL goes, a lone surrogate becomes U+FFFD."""
    if not isinstance(text, str):
        return ""
    text = text.replace("\x00", "")
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def dedupe_key(provider_message_id: str) -> str:
    """The provider's id as stored: a longer one than the column holds is kept as its hash."""
    key = clean_text(provider_message_id).strip()
    if len(key) > ID_MAX_LENGTH:
        return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


@functools.cache
def _lookup_sql() -> str:
    """One row: the id of a stored copy (same account and provider id), the contact of the
    number, the last message sent to it in the window and that message's campaign.
    Parameters: account id, provider id, (since, received, is_test) twice, the number."""
    # Only our own table and column names are put in; every value is a parameter.
    quote = connection.ops.quote_name
    inbound, message, contact = (
        quote(model._meta.db_table) for model in (InboundMessage, Message, Contact)
    )
    copy = (
        "SELECT i.id FROM " + inbound + " i WHERE i.provider_account_id = %s"  # noqa: S608
        " AND i.provider_message_id = %s AND i.provider_message_id <> ''"
    )
    last = (
        "SELECT m.{column} FROM " + message + " m WHERE m.contact_id = c.id"  # noqa: S608
        " AND m.created_at >= %s AND m.sent_at <= %s AND m.is_test = %s"
        " ORDER BY m.created_at DESC, m.id DESC LIMIT 1"
    )
    columns = f"({copy}), c.id, ({last.format(column='id')}), ({last.format(column='campaign_id')})"
    return (
        "SELECT " + columns + " FROM (SELECT 1 AS one) x"  # noqa: S608
        " LEFT JOIN " + contact + " c ON c.phone = %s"
    )


class _Handling:
    """What one new reply does: attribution, then its keyword's action."""

    def __init__(self, inbound: InboundMessage, known_number: bool) -> None:
        self.inbound = inbound
        self.known_number = known_number
        self.changed: list[str] = []

    def run(self) -> InboundMessage | None:
        """Look up, match, then the one INSERT (a plain reply is written once); a keyword's
        action, which names the stored reply, comes after it. Returns the stored copy
        instead when there is one (nothing is written then)."""
        inbound = self.inbound
        copy_id, contact_id, answers_id, campaign_id = self.look_up()
        if copy_id is not None:
            return InboundMessage.objects.get(pk=copy_id)
        if self.known_number:
            inbound.contact_id, inbound.answers_id = contact_id, answers_id
            inbound.campaign_id = campaign_id
        found = keywords.match(inbound.body)
        if found is not None:
            inbound.keyword = found.word[:100]
            inbound.language = found.language[:10]
            if found.action == keywords.POSSIBLE:
                inbound.possible_opt_out = True
        inbound.save(force_insert=True)
        self.changed = []
        if found is not None and found.action != keywords.POSSIBLE:
            self.act(found)
        if self.changed:
            inbound.save(update_fields=sorted(set(self.changed)))
        if events.inbound_received.wanted():
            events.inbound_received.send(sender=InboundMessage, inbound=inbound)
        return None

    def look_up(self) -> tuple[Any, Any, Any, Any]:
        """(stored copy, contact, last message, its campaign) ids, by _lookup_sql. Plain SQL:
        building it through the ORM cost thirty times what running it does, on every reply."""
        inbound = self.inbound
        since = inbound.received_at - timedelta(days=settings.HERALD_REPLY_ATTRIBUTION_DAYS)
        ops = connection.ops
        window = [
            ops.adapt_datetimefield_value(since),
            ops.adapt_datetimefield_value(inbound.received_at),
            False,
        ]
        key = [inbound.provider_account_id, inbound.provider_message_id]
        params: list[Any] = [*key, *window, *window, inbound.phone]
        with connection.cursor() as cursor:
            cursor.execute(_lookup_sql(), params)
            row = cursor.fetchone()
        return (row[0], row[1], row[2], row[3]) if row else (None, None, None, None)

    def act(self, found: keywords.Match) -> None:
        if found.action in (keywords.OPT_OUT, keywords.OPT_OUT_ALL):
            every = found.action == keywords.OPT_OUT_ALL
            self.opt_out(Channel.values if every else [self.inbound.channel])
        elif found.action == keywords.OPT_IN:
            self.opt_in()
        elif found.action == keywords.HELP:
            self.help(found.reply)

    def set(self, action: str, note: str = "") -> None:
        self.inbound.action, self.inbound.note = action, note[:200]
        self.changed += ["action", "note"]

    def opt_out(self, channels: list[str]) -> None:
        if not self.known_number:
            self.set(InboundMessage.Action.NONE, "opt-out keyword from a sender that is no number")
            return
        record_opt_out(self.inbound, channels, by=None)
        self.changed.append("opt_out")
        self.set(InboundMessage.Action.OPT_OUT, self.inbound.note)

    def opt_in(self) -> None:
        inbound = self.inbound
        entries = OptOut.objects.filter(phone=inbound.phone, channel=inbound.channel)
        undoable = list(entries.filter(source__in=OptOut.RESUBSCRIBABLE))
        if not undoable:
            other = entries.first()
            note = (
                f"opt-out {other.get_source_display().lower()}: a reply does not undo it"
                if other is not None
                else "was not opted out"
            )
            self.set(InboundMessage.Action.NONE, note)
            return
        for entry in undoable:
            entry.delete()
            AuditEvent.record(
                AuditEvent.Action.OPT_OUT_REMOVED,
                obj=entry,
                detail=_audit_detail(inbound, entry.channel),
            )
        self.set(InboundMessage.Action.OPT_IN, "opted back in by reply")

    def help(self, text: str) -> None:
        inbound = self.inbound
        self.set(InboundMessage.Action.HELP)
        if not self.known_number:
            return
        answered = InboundMessage.objects.filter(
            phone=inbound.phone,
            received_at__gte=inbound.received_at - HELP_ONCE_PER,
            auto_reply__isnull=False,
        )
        if answered.exists():
            self.set(InboundMessage.Action.HELP, "answered already in the last day")
            return
        inbound.auto_reply = queue_reply(inbound, text or settings.HERALD_HELP_REPLY)
        self.changed.append("auto_reply")


def record_opt_out(inbound: InboundMessage, channels: list[str], by: Any) -> list[OptOut]:
    """Opt `inbound`'s number out of `channels` with source "reply", `inbound` the evidence,
    each new entry audited (by `by`: None for a keyword, the person confirming a phrase)."""
    if ErasedNumber.objects.includes(inbound.phone):
        inbound.note = "number erased: suppressed on every channel already"
        return []
    made = []
    for channel in channels:
        entry, created = OptOut.objects.get_or_create(
            phone=inbound.phone,
            channel=channel,
            defaults={"source": OptOut.Source.REPLY, "note": f"reply {inbound.pk}"},
        )
        if created:
            made.append(entry)
            AuditEvent.record(
                AuditEvent.Action.OPT_OUT_ADDED,
                actor=by,
                obj=entry,
                detail=_audit_detail(inbound, channel),
            )
        if channel == inbound.channel or inbound.opt_out_id is None:
            inbound.opt_out = entry
    inbound.note = "opted out by reply" if made else "already opted out"
    return made


def confirm_opt_out(inbound: InboundMessage, by: Any) -> bool:
    """A person read a possible opt-out and agreed: opt the number out of the reply's channel.
    False when it is no number or was opted out already."""
    with transaction.atomic():
        inbound = InboundMessage.objects.select_for_update().get(pk=inbound.pk)
        _phone, known = sender_of(inbound.phone)
        if not known:
            return False
        made = record_opt_out(inbound, [inbound.channel], by=by)
        inbound.action = InboundMessage.Action.OPT_OUT
        inbound.possible_opt_out = False
        inbound.handled_at, inbound.handled_by = timezone.now(), by
        inbound.save(
            update_fields=[
                "action",
                "note",
                "opt_out",
                "possible_opt_out",
                "handled_at",
                "handled_by",
            ]
        )
    return bool(made)


def _audit_detail(inbound: InboundMessage, channel: str) -> dict[str, Any]:
    return {
        "channel": channel,
        "number": redact(inbound.phone),
        "source": OptOut.Source.REPLY,
        "reply": inbound.pk,
        "keyword": inbound.keyword,
        "language": inbound.language,
    }


def queue_reply(
    inbound: InboundMessage,
    body: str,
    template_id: str = "",
    template_params: list[str] | None = None,
    client_ref: str = "",
) -> Message:
    """A Message answering `inbound`, through the account it came by, queued for the engine
    (messaging.tasks.send_replies): rate limits, retries and receipts as for any message.
    A `client_ref` of the caller's makes a second queueing of the same answer fail on its
    unique key (IntegrityError) rather than send twice."""
    account = inbound.provider_account
    encoding, segments = segments_of(body)
    sender = account.sender
    if inbound.channel == Channel.SMS and inbound.to.startswith("+"):
        sender = inbound.to[:20]  # answer from the number they wrote to
    message = Message.objects.create(
        provider_account=account,
        channel=inbound.channel,
        contact_id=inbound.contact_id,
        phone=inbound.phone,
        sender=sender,
        body=body,
        encoding=encoding,
        segments=segments,
        client_ref=client_ref or Message.new_client_ref(),
        template_id=template_id,
        template_params=template_params or [],
        in_reply_to=inbound,
    )
    transaction.on_commit(lambda: async_task("messaging.tasks.send_replies"))
    return message


REPLY_ROUNDS = 5


def send_due_replies(limit: int = 200) -> int:
    """Send the replies that are due (HELP answers, the inbox's); returns how many were tried.

    A few claims at most per call: a row refused for an account reason waits
    HERALD_RETRY_WAIT_SECONDS, one that keeps failing gives up as the engine's do.
    """
    tried = 0
    replies = Message.objects.filter(campaign__isnull=True, in_reply_to__isnull=False)
    for _round in range(REPLY_ROUNDS):
        batch = replies.claim(limit)
        if not batch:
            break
        tried += len(batch)
        stopped_by = send_claimed(batch)
        if stopped_by is not None:
            later = timezone.now() + timedelta(seconds=settings.HERALD_RETRY_WAIT_SECONDS)
            Message.objects.filter(
                pk__in=[m.pk for m in batch], status=Message.Status.PENDING
            ).update(
                next_attempt_at=later,
                error_code=stopped_by.code[:50],
                error_message=stopped_by.message[:500],
            )
            break
    return tried


def poll_accounts(page_budget: int | None = None) -> dict[str, int]:
    """Read the replies of every active account whose gateway is polled; {account: stored}."""
    budget = page_budget or settings.HERALD_INBOUND_PAGE_BUDGET
    stored: dict[str, int] = {}
    for account in ProviderAccount.objects.filter(is_active=True):
        backend = account.get_backend()
        if not getattr(backend, "supports_inbound_polling", False):
            continue
        try:
            stored[account.name] = poll_account(account, budget)
        except ProviderError as error:
            logger.warning("polling replies at %s failed: %s", account.name, error)
    return stored


def poll_account(account: ProviderAccount, page_budget: int) -> int:
    """One bounded read of `account`'s replies from where the last one stopped."""
    backend = account.get_backend()
    found, cursor = backend.fetch_inbound(dict(account.inbound_cursor or {}), page_budget)
    stored = 0
    for incoming in found:
        if not dedupe_key(incoming.provider_message_id):
            # Polled again next time and stored again: a reply without an id is left out.
            logger.warning("a reply polled from %s had no id: skipped", account.name)
            continue
        try:
            outcome = receive(account, incoming)
        except UnusableInbound as unusable:
            # Skipped, not retried: the same entry would stop every later poll too.
            logger.warning("a reply polled from %s was skipped: %s", account.name, unusable)
            continue
        stored += outcome.stored
        if outcome.stored:
            logger.info(
                "reply %s polled from %s: %s", outcome.inbound.pk, account.name, outcome.action
            )
    # The cursor moves only once what it covers is stored: a crash reads it again (deduped).
    ProviderAccount.objects.filter(pk=account.pk).update(
        inbound_cursor=cursor, inbound_polled_at=timezone.now()
    )
    account.inbound_cursor = cursor
    return stored
