"""Idempotency-Key: a retried transactional send gets the first message back, never a second.

The first request with a key writes its message and an IdempotentRequest (the token's
user, the key, a hash of the request) in one transaction. Two requests racing with one key
are decided by the unique (user, key) constraint: the loser's transaction is rolled back,
its message with it, and it answers with the winner's message. The same key with another
request is refused (409 conflict), as is a key whose message has since been deleted. A
key is kept KEPT_FOR: an older one is forgotten (the key may be used afresh), and
`IdempotentRequest.objects.purge_expired()` (the minute tick) deletes them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import sql
from django.utils import timezone

from api.errors import ApiError
from api.models import IdempotentRequest
from messaging import transactional
from messaging.models import Message

KEPT_FOR = IdempotentRequest.KEPT_FOR
MAX_KEY_LENGTH = IdempotentRequest._meta.get_field("key").max_length or 255
HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Sent:
    message: Message
    #: The key was seen before: this is the first request's message, nothing new was sent.
    replayed: bool


def request_hash(payload: dict[str, Any]) -> str:
    """What makes two requests the same one: their parsed body, whatever its spacing and
    key order (and whether defaults were spelt out)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def checked_key(raw: str | None) -> str:
    """The request's key ('' for none); refused when it is empty or too long to keep."""
    if raw is None:
        return ""
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ApiError(
            422,
            "invalid",
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters.",
            {HEADER: ["empty, too long or unprintable"]},
        )
    return key


def once(
    user: Any,
    key: str,
    digest: str,
    prepare: Callable[[], Message],
    write: Callable[[Message], Message],
) -> Sent:
    """The first time `user` uses `key` (with a request hashing to `digest`): `prepare()`
    the message (its checks and reads), then `write()` it with the key in one short
    transaction. Every time after: the message it made, whatever `prepare` says now.

    The key is looked up only when writing it fails (or the request is refused): a
    first use, by far the most common, costs no extra query.
    """
    try:
        message = prepare()
    except ApiError:
        # Refused now (opted out since?): a retry of a request accepted before still
        # gets its message.
        earlier = _earlier(user, key, digest)
        if earlier is None:
            raise
        return Sent(earlier, replayed=True)
    try:
        return Sent(_first(user, key, digest, message, write), replayed=False)
    except IntegrityError:
        pass
    earlier = _earlier(user, key, digest)
    if earlier is not None:
        return Sent(earlier, replayed=True)
    # The key's row is a day old and forgotten: it goes, and this request is first.
    IdempotentRequest.objects.filter(user=user, key=key, created_at__lt=_cutoff()).delete()
    message.pk, message._state.adding = None, True  # its first INSERT was rolled back
    return Sent(_first(user, key, digest, message, write), replayed=False)


def _first(
    user: Any, key: str, digest: str, message: Message, write: Callable[[Message], Message]
) -> Message:
    """The message and its key written in one transaction."""
    if connection.vendor == "postgresql":
        return _first_in_one_statement(user, key, digest, message)
    with transaction.atomic():
        write(message)
        IdempotentRequest.objects.create(user=user, key=key, request_hash=digest, message=message)
    return message


def _first_in_one_statement(user: Any, key: str, digest: str, message: Message) -> Message:
    """On PostgreSQL: the message's INSERT (as the ORM writes it) and the key's, in one
    statement (a data-modifying CTE), atomic by itself: one round trip where a transaction
    took three, and the send route spent most of its time waiting on them. A key already
    taken fails the whole statement (IntegrityError), as the transaction did."""
    db = connections[connection.alias]
    insert, params = _message_insert(message, db)
    statement = _statements.get((db.alias, insert))
    if statement is None:
        quote = db.ops.quote_name
        statement = (
            f"WITH m AS ({insert} RETURNING {quote('id')}) "  # noqa: S608 - names from the models
            f"INSERT INTO {quote(IdempotentRequest._meta.db_table)} "
            f"(user_id, {quote('key')}, request_hash, message_id, created_at) "
            "SELECT %s, %s, %s, m.id, %s FROM m RETURNING message_id"
        )
        _statements[(db.alias, insert)] = statement
    # Outside a transaction the statement commits by itself. Inside a caller's (tests), a
    # savepoint keeps that transaction usable after a refusal.
    guard = transaction.atomic(using=db.alias) if db.in_atomic_block else contextlib.nullcontext()
    with guard, db.cursor() as cursor:
        cursor.execute(statement, [*params, user.pk, key, digest, timezone.now()])
        (message.pk,) = cursor.fetchone()
    message._state.adding, message._state.db = False, db.alias
    transactional.written(message)
    return message


#: By database: the message INSERT's text (the same for every message of plain values),
#: and each INSERT text's whole statement.
_insert_texts: dict[str, str] = {}
_statements: dict[tuple[str, str], str] = {}


@functools.cache
def _insert_fields() -> list[Any]:
    return [f for f in Message._meta.local_concrete_fields if not f.primary_key]


def _message_insert(message: Message, db: BaseDatabaseWrapper) -> tuple[str, list[Any]]:
    """The ORM's INSERT of `message` and its parameters. The text is compiled once per
    database (compiling it cost as much as running it); each message's values still go
    through the ORM's own steps (each field's pre_save and get_db_prep_save, as the
    compiler calls them), and a value that is an expression (a database default, say)
    gets the whole compile it needs."""
    fields = _insert_fields()
    values = [field.pre_save(message, True) for field in fields]
    text = _insert_texts.get(db.alias)
    if text is not None and not any(hasattr(v, "resolve_expression") for v in values):
        pairs = zip(fields, values, strict=True)
        return text, [field.get_db_prep_save(value, connection=db) for field, value in pairs]
    query = sql.InsertQuery(Message)
    query.insert_values(fields, [message])
    ((text, params),) = query.get_compiler(connection=db).as_sql()
    if len(params) == len(fields) == text.count("%s"):
        _insert_texts[db.alias] = text
    return text, list(params)


def _earlier(user: Any, key: str, digest: str) -> Message | None:
    """The message an unexpired earlier use of `key` made; refused if that was another
    request."""
    found = (
        IdempotentRequest.objects.filter(user=user, key=key, created_at__gte=_cutoff())
        .values_list("request_hash", "message_id")
        .order_by()[:1]
    )
    if not found:
        return None
    ((request_hash, message_id),) = found
    if request_hash != digest:
        raise ApiError(
            409,
            "conflict",
            f"This {HEADER} was used with a different request: use a new key for a new message.",
            {HEADER: ["used with a different request"]},
        )
    message = (
        Message.objects.select_related("provider_account", "requested_by")
        .filter(pk=message_id)
        .first()
        if message_id is not None
        else None
    )
    if message is None:
        raise ApiError(
            409,
            "conflict",
            f"The message this {HEADER} made has been deleted: use a new key.",
            {HEADER: ["its message is gone"]},
        )
    return message


def _cutoff() -> Any:
    return timezone.now() - KEPT_FOR
