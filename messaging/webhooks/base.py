"""What every provider's signed webhook needs, once: limits, signature, replay window, dedupe.

A provider's module subclasses `SignedWebhookView`, names its three signing headers
and fills in four steps: does the signature match, what is the event called, what is
its id, and apply it. The view does the rest, in this order: find the account and its
webhook secret, refuse a body too large or not declared JSON, check the headers, the
replay window and the signature, read the JSON, and record the webhook in the same
transaction as the event is applied (after it, with its outcome), so a retried or
replayed webhook is applied once.

By default (HERALD_WEBHOOK_APPLY=queued) the view only records the event, one INSERT,
answers, and nudges a worker, which applies what waits (messaging.webhooks.queue): the
provider's answer never waits on a reply's keywords or a report's message lookup, and a
burst queues instead of timing out. "inline" applies it in the request, as before.

A webhook is the same one again when any of three keys was seen at the account: its
webhook id (the same on the provider's retries), the event id in its body, or the hash
of its signed timestamp and body. Signatures do not cover the webhook id, so a request
replayed within the window under a new one still has the other two. Unique constraints
hold the keys, so two copies arriving at once are refused by the database, not by luck.

Only authentication and transport problems are refused (4xx). A verified event we
cannot use is answered 200 "ignored": providers retry anything else, and BulkSMSRates
switches the webhook off for the whole account after three tries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from contacts.storable import storable_text
from messaging.models import ProviderAccount, WebhookEvent
from messaging.webhooks.queue import nudge_applier

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
MAX_CLOCK_SKEW_SECONDS = 300
# Deeper JSON than any real event, yet shallow enough that saving it never hits
# Python's recursion limit inside the ORM.
MAX_JSON_DEPTH = 32
WEBHOOK_ID_MAX_LENGTH = WebhookEvent._meta.get_field("webhook_id").max_length or 150
EVENT_ID_MAX_LENGTH = WebhookEvent._meta.get_field("event_id").max_length or 150
EVENT_MAX_LENGTH = WebhookEvent._meta.get_field("event").max_length or 50
OUTCOME_MAX_LENGTH = WebhookEvent._meta.get_field("outcome").max_length or 200


class WebhookRefused(Exception):
    """A request answered 4xx: too big, not JSON, not signed, or signed too long ago."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> JsonResponse:
        return refusal(self.status, self.reason)


def refusal(status: int, reason: str) -> JsonResponse:
    return JsonResponse({"status": "error", "error": reason}, status=status)


class AlreadyApplied(Exception):
    """A webhook with one of this one's keys was recorded before: answered, not applied."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass(frozen=True)
class Receipt:
    """The keys one verified webhook is recorded under, each seen once per account."""

    webhook_id: str
    #: The provider's id of the event, from the body; "" when it gives none we can keep.
    event_id: str
    #: SHA-256 of what the signature covers: the same for every copy of one signed request.
    request_hash: str

    def seen(self, account: ProviderAccount) -> str:
        """Which key a record at `account` already has ("" for none), for the log."""
        keys = [("webhook id", Q(webhook_id=self.webhook_id))]
        if self.event_id:
            keys.append(("event id", Q(event_id=self.event_id)))
        keys.append(("signed request", Q(request_hash=self.request_hash)))
        records = WebhookEvent.objects.filter(provider_account=account)
        return next((name for name, key in keys if records.filter(key).exists()), "")


def request_hash(timestamp: str, body: bytes) -> str:
    # The timestamp is digits only (check_fresh), so the "." cannot be part of it.
    return hashlib.sha256(timestamp.encode() + b"." + body).hexdigest()


@method_decorator(csrf_exempt, name="dispatch")
class SignedWebhookView(View):
    """Receives one provider's webhooks for the account named in the URL."""

    http_method_names = ["post"]

    #: The ProviderAccount.Backend whose accounts this view receives webhooks for.
    backend: ClassVar[str]
    #: The headers with the signature, the unix time it was made at, and the webhook's id
    #: (the same on every retry of one webhook).
    signature_header: ClassVar[str]
    timestamp_header: ClassVar[str]
    id_header: ClassVar[str]

    # What each provider fills in.

    def signature_matches(self, secret: str, signature: str, timestamp: str, body: bytes) -> bool:
        """Whether `signature` is the provider's for `body` at `timestamp` (compare in
        constant time: hmac.compare_digest)."""
        raise NotImplementedError

    def event_name(self, payload: dict[str, Any]) -> str:
        """The provider's name for the event, as recorded and logged; "" when it gives none."""
        raise NotImplementedError

    def event_id(self, payload: dict[str, Any]) -> str:
        """The provider's id of the event, the same on every copy of it; "" when it has none
        (the webhook id and the signed request's hash still dedupe it)."""
        return ""

    def apply(self, account: ProviderAccount, webhook_id: str, payload: dict[str, Any]) -> str:
        """Apply one verified event to our records; returns what it did, for the record."""
        raise NotImplementedError

    # The steps, the same for every provider.

    def post(self, request: HttpRequest, account: str) -> HttpResponse:
        provider_account, secret = webhook_account(self.backend, account)
        if not secret or not isinstance(secret, str):
            logger.warning("%s webhook for %s refused: no webhook_secret", self.backend, account)
            return refusal(401, "webhook secret not configured")
        try:
            webhook_id, timestamp = self.verify(request, secret)
            payload = parse_payload(request.body)
        except WebhookRefused as refused:
            return refused.response()
        receipt = Receipt(webhook_id, self.event_id(payload), request_hash(timestamp, request.body))
        event = repr(self.event_name(payload))[:60]  # repr: no line breaks in a log line
        try:
            if settings.HERALD_WEBHOOK_APPLY == "inline":
                outcome = self.apply_once(provider_account, receipt, payload)
            else:
                outcome = self.record(provider_account, receipt, payload)
        except AlreadyApplied as seen:
            # 200: the provider must not retry it, and it must not count as a failure.
            logger.info(
                "%s %s %s %s: duplicate (same %s)",
                self.backend,
                account,
                webhook_id,
                event,
                seen.key,
            )
            return JsonResponse({"status": "duplicate"})
        logger.info("%s %s %s %s: %s", self.backend, account, webhook_id, event, outcome)
        return JsonResponse({"status": "ok", "outcome": outcome})

    def verify(self, request: HttpRequest, secret: str) -> tuple[str, str]:
        """The webhook id and signing time of a request within our limits and signed with
        `secret` just now."""
        check_body(request)
        headers = (self.signature_header, self.timestamp_header, self.id_header)
        signature, timestamp, webhook_id = (request.headers.get(h, "") for h in headers)
        if not (signature and timestamp and webhook_id):
            raise WebhookRefused(400, f"headers required: {', '.join(headers)}")
        check_webhook_id(webhook_id, self.id_header)
        check_fresh(timestamp, self.timestamp_header)
        if not self.signature_matches(secret, signature, timestamp, request.body):
            raise WebhookRefused(401, "bad signature")
        return webhook_id, timestamp

    def record(self, account: ProviderAccount, receipt: Receipt, payload: dict[str, Any]) -> str:
        """Keep the event for a worker to apply (one INSERT, and the provider has its answer);
        AlreadyApplied when any of its keys was recorded before."""
        event = WebhookEvent(
            provider_account=account,
            webhook_id=receipt.webhook_id,
            event_id=receipt.event_id,
            request_hash=receipt.request_hash,
            event=self.event_name(payload)[:EVENT_MAX_LENGTH],
            raw=payload,
        )
        try:
            if transaction.get_connection().in_atomic_block:
                # A caller's transaction survives a copy's refusal in a savepoint; a request
                # has none, and its INSERT stands alone (no BEGIN and COMMIT around it).
                with transaction.atomic():
                    event.save(force_insert=True)
            else:
                event.save(force_insert=True)
        except IntegrityError:
            if seen := receipt.seen(account):
                raise AlreadyApplied(seen) from None
            raise
        transaction.on_commit(nudge_applier)
        return "queued"

    def apply_once(
        self, account: ProviderAccount, receipt: Receipt, payload: dict[str, Any]
    ) -> str:
        """Apply the event and record it, in one transaction; AlreadyApplied when any of its
        keys was recorded before.

        The record is written last, with its outcome (one INSERT, no UPDATE after): a copy
        already recorded makes that INSERT fail, and everything the copy did is rolled back
        with it. A unique key of what the event writes (a reply's provider id) can also
        meet a copy committed a moment ago, under other keys: the event is then applied
        once more, and finds it.
        """
        for attempt in range(2):
            try:
                with transaction.atomic():
                    outcome = self.apply(account, receipt.webhook_id, payload)
                    WebhookEvent.objects.create(
                        provider_account=account,
                        webhook_id=receipt.webhook_id,
                        event_id=receipt.event_id,
                        request_hash=receipt.request_hash,
                        event=self.event_name(payload)[:EVENT_MAX_LENGTH],
                        raw=payload,
                        outcome=outcome[:OUTCOME_MAX_LENGTH],
                        applied_at=timezone.now(),
                    )
                return outcome[:OUTCOME_MAX_LENGTH]
            except IntegrityError:
                # Caught outside atomic(), so PostgreSQL's aborted transaction is rolled back
                # first. A copy being recorded at this moment made us wait for its commit,
                # so it shows.
                if seen := receipt.seen(account):
                    raise AlreadyApplied(seen) from None
                if attempt:
                    raise
        raise AssertionError("unreachable")


#: A webhook's account and its secret are read once per process for this long: a query
#: and a decryption less per event. Saving or deleting an account forgets them at once
#: in its own process; another process (a secret rotated from the CLI) sees the change
#: within this time, and the provider's retry gets through after it.
ACCOUNT_SECONDS = 5.0
_accounts: dict[tuple[str, str], tuple[float, ProviderAccount, Any]] = {}


def webhook_account(backend: str, name: str) -> tuple[ProviderAccount, Any]:
    """The account named in a webhook's URL (404 when there is none) and its webhook_secret."""
    key = (backend, name)
    cached = _accounts.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1], cached[2]
    account = get_object_or_404(ProviderAccount, name=name, backend=backend)
    secret = account.credentials.get("webhook_secret")
    _accounts[key] = (time.monotonic() + ACCOUNT_SECONDS, account, secret)
    return account, secret


@receiver(post_save, sender=ProviderAccount)
@receiver(post_delete, sender=ProviderAccount)
def forget_accounts(**kwargs: Any) -> None:
    _accounts.clear()


def check_body(request: HttpRequest) -> None:
    """Refuse a body larger than MAX_BODY_BYTES or not declared JSON."""
    try:
        declared_length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared_length = 0
    # Checked before reading the body, so an oversized one is never loaded.
    if declared_length > MAX_BODY_BYTES or len(request.body) > MAX_BODY_BYTES:
        raise WebhookRefused(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if (request.content_type or "").lower() != "application/json":
        raise WebhookRefused(400, "Content-Type must be application/json")


def check_webhook_id(webhook_id: str, header: str) -> None:
    """Refuse an id the dedupe record cannot hold."""
    if len(webhook_id) > WEBHOOK_ID_MAX_LENGTH:
        raise WebhookRefused(400, f"{header} too long")
    # Control characters (NUL above all) are refused by PostgreSQL, and no real id has them.
    if not webhook_id.isprintable():
        raise WebhookRefused(400, f"{header} must be printable text")


def check_fresh(timestamp: str, header: str) -> None:
    """Refuse a signing time that is not unix seconds, or too far from ours to be no replay."""
    # Digits only: int() would also take signs, spaces and underscores.
    if not re.fullmatch(r"[0-9]{1,15}", timestamp):
        raise WebhookRefused(400, f"{header} must be unix seconds")
    if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise WebhookRefused(401, "stale timestamp")


def parse_payload(body: bytes) -> dict[str, Any]:
    """The JSON object in `body`, made storable; refused when it is no object, or nests
    deeper than any real event.

    A verified event is never refused for what is inside its strings or numbers: the
    provider would retry it, and BulkSMSRates switches off the whole account's webhook
    after three tries (one reply with a NUL in it, a GSM "@" sent as 0x00, would cut off
    every delivery report). NUL goes, a lone surrogate becomes U+FFFD, NaN and infinities
    become null (no database stores them)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        raise WebhookRefused(400, "body must be a JSON object")
    storable = storable_json(payload)
    if not isinstance(storable, dict):
        raise WebhookRefused(400, f"body nests deeper than {MAX_JSON_DEPTH} levels")
    return storable


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_TOO_DEEP = object()


def storable_json(value: Any, depth: int = 0) -> Any:
    """`value` as every database stores it: NUL dropped from strings (PostgreSQL refuses
    it), lone surrogates replaced (Python's json reads "\\ud800", no database encodes it),
    NaN and infinities as None (json reads NaN, Infinity and 1e999; the databases' JSON
    does not). A structure deeper than MAX_JSON_DEPTH gives _TOO_DEEP."""
    if depth > MAX_JSON_DEPTH:
        return _TOO_DEEP
    if isinstance(value, str):
        return value if storable_text(value) else clean_string(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        items = {}
        for key, item in value.items():
            stored = storable_json(item, depth + 1)
            if stored is _TOO_DEEP:
                return _TOO_DEEP
            items[clean_string(key) if not storable_text(key) else key] = stored
        return items
    if isinstance(value, list):
        stored_items = [storable_json(item, depth + 1) for item in value]
        return _TOO_DEEP if any(item is _TOO_DEEP for item in stored_items) else stored_items
    return value


def clean_string(text: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", text.replace("\x00", ""))
