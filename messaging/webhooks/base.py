"""What every provider's signed webhook needs, once: limits, signature, replay window, dedupe.

A provider's module subclasses `SignedWebhookView`, names its three signing headers
and fills in three steps: does the signature match, what is the event called, and
apply it. The view does the rest, in this order: find the account and its webhook
secret, refuse a body too large or not declared JSON, check the headers, the replay
window and the signature, read the JSON, and record the webhook id in the same
transaction as the event is applied, so a retried webhook is applied once.

Only authentication and transport problems are refused (4xx). A verified event we
cannot use is answered 200 "ignored": providers retry anything else, and BulkSMSRates
switches the webhook off for the whole account after three tries.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from typing import Any, ClassVar

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from contacts.storable import storable_text
from messaging.models import ProviderAccount, WebhookEvent

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
MAX_CLOCK_SKEW_SECONDS = 300
# Deeper JSON than any real event, yet shallow enough that saving it never hits
# Python's recursion limit inside the ORM.
MAX_JSON_DEPTH = 32
WEBHOOK_ID_MAX_LENGTH = WebhookEvent._meta.get_field("webhook_id").max_length or 150
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

    def apply(self, account: ProviderAccount, webhook_id: str, payload: dict[str, Any]) -> str:
        """Apply one verified event to our records; returns what it did, for the record."""
        raise NotImplementedError

    # The steps, the same for every provider.

    def post(self, request: HttpRequest, account: str) -> HttpResponse:
        provider_account = get_object_or_404(ProviderAccount, name=account, backend=self.backend)
        secret = provider_account.credentials.get("webhook_secret")
        if not secret or not isinstance(secret, str):
            logger.warning("%s webhook for %s refused: no webhook_secret", self.backend, account)
            return refusal(401, "webhook secret not configured")
        try:
            webhook_id = self.verify(request, secret)
            payload = parse_payload(request.body)
        except WebhookRefused as refused:
            return refused.response()
        outcome = self.apply_once(provider_account, webhook_id, payload)
        event = repr(self.event_name(payload))[:60]  # repr: no line breaks in a log line
        if outcome is None:
            logger.info("%s %s %s %s: duplicate", self.backend, account, webhook_id, event)
            return JsonResponse({"status": "duplicate"})
        logger.info("%s %s %s %s: %s", self.backend, account, webhook_id, event, outcome)
        return JsonResponse({"status": "ok", "outcome": outcome})

    def verify(self, request: HttpRequest, secret: str) -> str:
        """The webhook id of a request within our limits and signed with `secret` just now."""
        check_body(request)
        headers = (self.signature_header, self.timestamp_header, self.id_header)
        signature, timestamp, webhook_id = (request.headers.get(h, "") for h in headers)
        if not (signature and timestamp and webhook_id):
            raise WebhookRefused(400, f"headers required: {', '.join(headers)}")
        check_webhook_id(webhook_id, self.id_header)
        check_fresh(timestamp, self.timestamp_header)
        if not self.signature_matches(secret, signature, timestamp, request.body):
            raise WebhookRefused(401, "bad signature")
        return webhook_id

    def apply_once(
        self, account: ProviderAccount, webhook_id: str, payload: dict[str, Any]
    ) -> str | None:
        """Record and apply the event in one transaction; None when this webhook id was seen."""
        try:
            with transaction.atomic():
                record = WebhookEvent.objects.create(
                    provider_account=account,
                    webhook_id=webhook_id,
                    event=self.event_name(payload)[:EVENT_MAX_LENGTH],
                    raw=payload,
                )
                record.outcome = self.apply(account, webhook_id, payload)[:OUTCOME_MAX_LENGTH]
                record.save(update_fields=["outcome"])
        except IntegrityError:
            # Caught outside atomic() so PostgreSQL's aborted transaction is rolled back first.
            if WebhookEvent.objects.filter(
                provider_account=account, webhook_id=webhook_id
            ).exists():
                return None
            raise
        return record.outcome


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
    """The JSON object in `body`; refused when it is not one we can store."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict) or not storable_json(payload):
        raise WebhookRefused(400, "body must be a JSON object")
    return payload


def storable_json(value: Any) -> bool:
    """False for JSON that the database would refuse: NUL characters, lone surrogates
    (Python's json reads "\\ud800", no database encodes it), NaN and infinities (json
    reads NaN, Infinity and 1e999; neither database's JSON does), absurd nesting."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return False
        if isinstance(item, str) and not storable_text(item):
            return False
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, dict):
            stack.extend((part, depth + 1) for pair in item.items() for part in pair)
        elif isinstance(item, list):
            stack.extend((part, depth + 1) for part in item)
    return True
