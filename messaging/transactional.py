"""One message to one number, asked for by an integration: a transactional send.

`queue()` checks what was asked (the number in any form, an account that can send the
channel, no opt-out on that channel, no erasure, a value for every variable), renders it
with the one renderer (messaging.rendering: `{{variables}}`, encoding, segments) and writes
one pending Message of no campaign, marked `is_transactional`. Nothing is sent in the
request. The engine sends it as it sends campaigns and inbox replies: `send_due()` claims
such rows and hands them to messaging.dispatch.send_claimed, so the opt-out is checked
again at the moment of sending, the account's shared RateBucket paces it together with
every campaign, a passing error is retried with backoff, a request that may have reached
the provider is in doubt and reconciled (never resent blindly), and delivery reports come
back through the account's webhooks or status polls.

Wake-ups, as for incoming webhooks (messaging.webhooks.queue): a message's commit nudges
the sender task, at most once a second per web process; one worker at a time holds the
sender's lease and keeps looking for LINGER_SECONDS after the last message it found, so a
stream of sends is sent by one task, not a task each. The minute tick
(messaging.tasks.inbound_tick) sends what a lost nudge or a retry left due.

Numbers and bodies are never logged in clear.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from contacts.models import (
    ERASED_REFUSAL,
    Channel,
    Contact,
    ErasedNumber,
    OptOut,
    erasure_hash,
    normalise_phone,
)
from contacts.phones import redact
from contacts.rows import Columns
from messaging.backends import backend_class
from messaging.dispatch import send_claimed
from messaging.models import Message, ProviderAccount, TaskLease
from messaging.rendering import fallbacks, placeholders, render, segments_of

logger = logging.getLogger(__name__)

#: The longest text sent: ten SMS segments of GSM-7 (a gateway refuses longer ones anyway).
MAX_BODY_CHARS = 1600
SENDER_MAX_LENGTH = Message._meta.get_field("sender").max_length or 20
ACCOUNT_FIELDS = ("id", "name", "backend", "sender", "price_per_segment", "currency")
#: What each account row also carries of the number asked for (see _lookup_sql).
LOOKUPS = ("erased", "opted_out", "contact_id")
#: Rows one claim takes, and claims per call of send_due.
BATCH = 200
ROUNDS = 5
LEASE = "transactional-sender"
#: A web process queues the sender at most this often.
NUDGE_SECONDS = 1.0
#: A sender keeps looking this long after the last message it found (more than a nudge's
#: spacing, so a message whose commit did not nudge is found by the task that is lingering).
LINGER_SECONDS = 2.0
#: How often a lingering sender looks.
POLL_SECONDS = 0.1
#: A sender hands over to a fresh task after this long, well inside the task timeout.
MAX_RUN_SECONDS = 60.0


class Refused(Exception):
    """What was asked cannot be sent: a stable code (invalid, opted_out, erased), the words,
    and {field: [problems]}."""

    def __init__(self, code: str, message: str, details: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def invalid(field_name: str, message: str) -> Refused:
    return Refused("invalid", message, {field_name: [message]})


@dataclass(frozen=True)
class Outgoing:
    """One transactional message as an integration asked for it."""

    #: The recipient, in any form a person writes a number (read in HERALD_DEFAULT_REGION).
    to: str
    #: The text; `{{name}}` and `{{name|fallback}}` read `variables`, then the contact's fields.
    body: str
    channel: str = Channel.SMS
    variables: Mapping[str, str] = field(default_factory=dict)
    #: WhatsApp: the provider's approved template id, and its ordered parameters (which may
    #: use variables too).
    whatsapp_template: str = ""
    parameters: tuple[str, ...] = ()
    #: The provider account's name; empty: the only active account that sends the channel.
    provider: str = ""
    #: Empty: the account's own sender.
    sender: str = ""


def queue(outgoing: Outgoing, by: Any = None) -> Message:
    """A pending transactional Message for `outgoing`, asked for by `by`, sent by the engine
    once the caller's transaction commits; Refused (nothing written) when it cannot go."""
    return write(prepared(outgoing, by))


def prepared(outgoing: Outgoing, by: Any = None) -> Message:
    """The Message `queue` writes, checked and rendered, not written yet: a caller keeping
    more with it (an Idempotency-Key) writes both in one short transaction of its own,
    and no write lock waits on these reads (SQLite has one lock for every writer)."""
    phone = _number(outgoing.to)
    active = _active_accounts(phone, outgoing.channel)
    account = account_for(outgoing.provider, outgoing.channel, active)
    _check_channel(account, outgoing)
    contact_id = _reachable_contact(account, phone, outgoing.channel)
    body, parameters = _rendered(outgoing, _fields(contact_id, outgoing))
    encoding, segments = segments_of(body)
    return Message(
        campaign=None,
        contact_id=contact_id,
        provider_account=account,
        channel=outgoing.channel,
        phone=phone,
        sender=outgoing.sender or account.sender,
        body=body,
        encoding=encoding,
        segments=segments,
        cost=segments * account.price_per_segment,
        template_id=outgoing.whatsapp_template,
        template_params=parameters,
        client_ref=Message.new_client_ref(),
        is_transactional=True,
        requested_by=by,
    )


def write(message: Message) -> Message:
    """Write a prepared message; the sender is nudged once it is committed. (An opt-out
    that comes between the checks and this is met by the engine's own check at send.)"""
    message.save(force_insert=True)
    written(message)
    return message


def written(message: Message) -> None:
    """What follows a transactional message's INSERT, however it was written: the sender
    is nudged once the row is committed."""
    transaction.on_commit(nudge_sender)


def _number(text: str) -> str:
    try:
        return normalise_phone(text)
    except ValidationError as exc:
        raise invalid("to", " ".join(exc.messages)) from None


def account_for(
    name: str, channel: str, active: list[ProviderAccount] | None = None
) -> ProviderAccount:
    """The active account called `name`; with no name, the only one that sends `channel`.
    (`active`: the active accounts, when the caller has read them already.)"""
    if active is None:
        active = _active_accounts()
    if name:
        account = next((a for a in active if a.name == name), None)
        if account is None:
            raise invalid("provider", f"No active provider account is named {name!r}.")
        return account
    able = [a for a in active if channel in backend_class(a.backend).channels]
    if len(able) == 1:
        return able[0]
    if not able:
        raise invalid("provider", f"No active provider account sends {channel} messages.")
    names = ", ".join(a.name for a in able)
    raise invalid("provider", f"Several accounts send {channel} messages: name one ({names}).")


def _active_accounts(phone: str = "", channel: str = "") -> list[ProviderAccount]:
    """The active accounts, with what a message and its answer read of them (credentials
    stay in the database). Every send asks, so it is one hand-written SELECT (the ORM's
    compiling of the same query cost three times its running); given a number and a
    channel, each row also carries what `_reachable_contact` reads of them (the send's
    other read, in the same trip), as attributes `erased`, `opted_out` and `contact_id`."""
    table = connection.ops.quote_name(ProviderAccount._meta.db_table)
    columns = _account_columns()
    listed = columns.select(connection)
    if phone:
        listed += f", {_lookup_sql()}"
        params = [erasure_hash(phone), phone, channel, phone]
    else:
        params = []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {listed} FROM {table} WHERE is_active ORDER BY name",  # noqa: S608 - names from the models
            params,
        )
        rows = cursor.fetchall()
    accounts = []
    for row in rows:
        account = columns.build(row, connection)
        if phone:
            for name, value in zip(LOOKUPS, row[len(columns) :], strict=True):
                setattr(account, name, value)
        accounts.append(account)
    return accounts


@functools.cache
def _account_columns() -> Columns[ProviderAccount]:
    return Columns(ProviderAccount, ACCOUNT_FIELDS)


def _check_channel(account: ProviderAccount, outgoing: Outgoing) -> None:
    channel = outgoing.channel
    if channel not in Channel.values:
        raise invalid("channel", f"No such channel: {channel!r} (sms or whatsapp).")
    if channel not in backend_class(account.backend).channels:
        raise invalid("channel", f"{account} ({account.backend}) cannot send {channel} messages.")
    if channel == Channel.WHATSAPP and not outgoing.whatsapp_template:
        raise invalid(
            "whatsapp_template",
            "WhatsApp messages outside a conversation need the provider's approved template id.",
        )
    if channel != Channel.WHATSAPP and (outgoing.whatsapp_template or outgoing.parameters):
        raise invalid("whatsapp_template", "A WhatsApp template is for WhatsApp messages.")
    if len(outgoing.sender) > SENDER_MAX_LENGTH:
        raise invalid("sender", f"A sender has at most {SENDER_MAX_LENGTH} characters.")


def _reachable_contact(account: ProviderAccount, phone: str, channel: str) -> int | None:
    """The number's contact (if any), read with the accounts; refused when the number was
    erased at its owner's request or opted out of `channel`: the engine would skip it at
    send time anyway, and the caller should know now."""
    read = (getattr(account, name) for name in LOOKUPS)
    erased, opted_out, contact_id = read
    if erased:
        raise Refused("erased", ERASED_REFUSAL, {"to": [ERASED_REFUSAL]})
    if opted_out:
        words = f"{redact(phone)} opted out of {channel} messages: nothing was queued."
        raise Refused("opted_out", words, {"to": [words]})
    return int(contact_id) if contact_id is not None else None


@functools.cache
def _lookup_sql() -> str:
    """Three columns: whether the number was erased (by its keyed hash, as ErasedNumber
    keeps it), whether it opted out of the channel, and its contact's id. Parameters: the hash,
    the number, the channel, the number. Plain SQL: the three through the ORM cost more
    than running them does, on every send."""
    # Only our own table names are put in; every value is a parameter.
    quote = connection.ops.quote_name
    erased, opt_out, contact = (quote(m._meta.db_table) for m in (ErasedNumber, OptOut, Contact))
    return (
        "(SELECT 1 FROM " + erased + " WHERE phone_hash = %s) AS erased,"  # noqa: S608
        " (SELECT 1 FROM " + opt_out + " WHERE phone = %s AND channel = %s LIMIT 1) AS opted_out,"
        " (SELECT id FROM " + contact + " WHERE phone = %s) AS contact_id"
    )


def _fields(contact_id: int | None, outgoing: Outgoing) -> dict[str, str]:
    """What the texts' placeholders read: the caller's variables, then the contact's
    fields (read only when the texts have placeholders)."""
    texts = [outgoing.body, *outgoing.parameters]
    if contact_id is None or not any(placeholders(text) for text in texts):
        return dict(outgoing.variables)
    contact = Contact.objects.get(pk=contact_id)
    return {**contact.template_fields(), **outgoing.variables}


def _rendered(outgoing: Outgoing, fields: dict[str, str]) -> tuple[str, list[str]]:
    """The body and WhatsApp parameters filled in; a variable with no value and no
    fallback is refused, not sent blank."""
    texts = [outgoing.body, *outgoing.parameters]
    given = fallbacks(*texts).items()
    missing = [name for name, fallback in given if fallback is None and not fields.get(name)]
    if missing:
        names = ", ".join("{{" + name + "}}" for name in missing)
        raise invalid("variables", f"No value for {names}: give it in variables.")
    body = render(outgoing.body, fields)
    if not body.strip():
        raise invalid("body", "The message has no text.")
    if len(body) > MAX_BODY_CHARS:
        raise invalid("body", f"The message is longer than {MAX_BODY_CHARS} characters.")
    return body, [render(text, fields) for text in outgoing.parameters]


# --- sending ---------------------------------------------------------------------------


def send_due(limit: int = BATCH) -> int:
    """Send the transactional messages that are due; returns how many were tried."""
    return _send_due(limit)[0]


def _send_due(limit: int = BATCH) -> tuple[int, bool]:
    """(how many were tried, whether an account refused them). A few claims at most per
    call; rows an account refused (bad credentials, no balance) wait
    HERALD_RETRY_WAIT_SECONDS and are tried again by a later call."""
    tried = 0
    for _round in range(ROUNDS):
        batch = Message.objects.filter(is_transactional=True).claim(limit)
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
            logger.warning("transactional sends held back: %s", stopped_by.code)
            return tried, True
    return tried, False


def _inline() -> bool:
    """Tasks run in the request that queues them (django-q2's sync mode, as in tests)."""
    return bool(settings.Q_CLUSTER.get("sync"))


_nudged_at = float("-inf")


def nudge_sender() -> None:
    """Queue the sender, unless this process did within NUDGE_SECONDS (that task, or the
    one lingering, will find what was written since)."""
    global _nudged_at
    now = time.monotonic()
    if now - _nudged_at < NUDGE_SECONDS and not _inline():
        return
    _nudged_at = now
    from django_q.tasks import async_task

    try:
        async_task("messaging.tasks.send_transactional", task_name="send transactional")
    except Exception as exc:  # the message is kept: the minute tick sends it
        _nudged_at = float("-inf")
        logger.warning("Could not queue the transactional sender (%s)", type(exc).__name__)


def run_sender() -> int:
    """The queued sender: sends what is due while it holds the lease, lingering for more.
    Returns how many it tried (0 at once when another worker holds the lease)."""
    holder = uuid.uuid4().hex
    linger = 0.0 if _inline() else LINGER_SECONDS
    lease_seconds = linger + MAX_RUN_SECONDS
    started = time.monotonic()
    tried = 0
    while TaskLease.objects.take(LEASE, holder, lease_seconds):
        quiet_since = time.monotonic()
        while True:
            found, refused = _send_due()
            tried += found
            now = time.monotonic()
            if now - started >= MAX_RUN_SECONDS:
                TaskLease.objects.release(LEASE, holder)
                _requeue()
                return tried
            if refused:
                # The account said no: what it refused waits, and a later nudge or the
                # minute tick tries again; looking again now would only ask it again.
                TaskLease.objects.release(LEASE, holder)
                return tried
            if found:
                quiet_since = now
            elif now - quiet_since >= linger:
                break
            else:
                time.sleep(POLL_SECONDS)
            TaskLease.objects.take(LEASE, holder, lease_seconds)
        TaskLease.objects.release(LEASE, holder)
        # A nudge that found the lease held relied on this look.
        found = send_due()
        tried += found
        if not found:
            break
    return tried


def _requeue() -> None:
    from django_q.tasks import async_task

    async_task("messaging.tasks.send_transactional", task_name="send transactional")
