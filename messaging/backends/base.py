"""The backend contract every provider module fills in.

Shaped after django-anymail: the base class fixes the steps of a send
(build payload -> post -> parse a result per recipient) and turns failures
into the error hierarchy in messaging.exceptions; a provider module supplies
the three steps and declares what it can do.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.utils import timezone

from contacts.models import Channel
from messaging.concurrency import map_in_threads
from messaging.exceptions import AccountError, ProviderError, RetryableError

if TYPE_CHECKING:
    from messaging.inbound import Incoming
    from messaging.models import Message, ProviderAccount


@dataclass
class SendResult:
    """What the provider said about one message of a send."""

    message: Message
    provider_message_id: str = ""
    #: For a bulk request that names no per-recipient ids: the request's own id.
    provider_batch_id: str = ""
    cost: Decimal | None = None
    error: ProviderError | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None


@dataclass
class StatusUpdate:
    """A delivery report or status lookup answer, normalised to our statuses."""

    message: Message
    status: str
    event_id: str
    occurred_at: datetime
    error_code: str = ""
    error_message: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Balance:
    """What the provider says the account may still spend."""

    available: int  # minor units (pence, cents) of `currency`
    currency: str
    #: The provider's own low-balance threshold, in the same units, when it has one.
    low_threshold: int | None = None

    @property
    def is_low(self) -> bool:
        """Below the provider's threshold (never, when it sets none)."""
        return self.low_threshold is not None and self.available < self.low_threshold


def looked_up(
    message: Message,
    state: str,
    raw: dict[str, Any],
    *,
    provider: str,
    delivered: Collection[str],
    failed: Collection[str],
    private: Collection[str] = (),
) -> StatusUpdate | None:
    """A provider's status for a message as a StatusUpdate, or None while it is not final.

    `state` is compared in lower case; `private` keys (numbers, bodies) are left out of
    the raw payload kept on the status event.
    """
    from messaging.models import Message

    state = state.strip().lower()
    if state in delivered:
        status, code = Message.Status.DELIVERED, ""
    elif state in failed:
        status, code = Message.Status.FAILED, state.upper()
    else:
        return None
    return StatusUpdate(
        message=message,
        status=status,
        event_id=f"lookup:{message.provider_message_id}:{state}",
        occurred_at=timezone.now(),
        error_code=code,
        error_message=f"{provider} reports {state}" if code else "",
        raw={key: value for key, value in raw.items() if key not in private},
    )


#: The error code of rows given back unsent because their claim was about to run out.
LEASE_NEAR_END = "LEASE_NEAR_END"


#: A claim of concurrent single sends holds about this many seconds of the account's pace.
CLAIM_SECONDS = 15


class _Refusal:
    """The account error that stops a send's later batches, once one is seen."""

    error: AccountError | None = None


def _lease_running_out(batch: Sequence[Message]) -> bool:
    """Less than a quarter of the claim (at most 30 s) left: too late to start a request."""
    ends = getattr(batch[0], "lease_expires_at", None)
    margin = timedelta(seconds=min(30.0, settings.HERALD_SEND_LEASE_SECONDS / 4))
    return ends is not None and timezone.now() >= ends - margin


class BaseBackend:
    """One instance per ProviderAccount; holds no state between sends but what caches allow."""

    #: Channels this provider can carry.
    channels: ClassVar[frozenset[str]] = frozenset({Channel.SMS})
    #: Most recipients one provider request may carry.
    max_batch: ClassVar[int] = 1
    #: Rows the engine should claim per round when it is not the configured batch size
    #: (a bulk provider wants a full request's worth).
    claim_size: int | None = None
    #: Whether lookup_statuses can ask the provider about sent messages.
    supports_status_lookup: ClassVar[bool] = False
    #: Messages per lookup_statuses / find_sent call: one where each is its own request,
    #: so one failed lookup holds up no other; all at once for a history reader.
    lookup_batch: ClassVar[int] = 100
    #: Whether find_sent can tell which messages in doubt the provider really has.
    supports_reconcile: ClassVar[bool] = False
    #: Messages per find_sent call, when not `lookup_batch` (a list reader takes them all).
    reconcile_batch: ClassVar[int | None] = None
    #: Whether the provider posts delivery reports to our webhook.
    supports_webhooks: ClassVar[bool] = False
    #: Whether replies are fetched by polling (fetch_inbound), not pushed to a webhook.
    supports_inbound_polling: ClassVar[bool] = False
    #: Credential names `provider add --set` accepts (stored encrypted).
    credential_keys: ClassVar[tuple[str, ...]] = ()
    #: Non-secret settings `provider add --set` accepts (kept in ProviderAccount.options).
    option_keys: ClassVar[tuple[str, ...]] = ()
    #: The provider's production address, used when the account sets no base_url.
    default_base_url: ClassVar[str] = ""

    @classmethod
    def validate_sender(cls, sender: str) -> str | None:
        """Why `sender` cannot be used with this provider, or None when it can."""
        return None

    def __init__(self, account: ProviderAccount) -> None:
        self.account = account

    def send_messages(self, messages: Sequence[Message]) -> list[SendResult]:
        """Send `messages`, returning exactly one result for each.

        A batch-wide failure becomes that error on every message of the batch;
        once the account itself is refused, later batches are not attempted.
        Batches go `concurrency` at a time (see `concurrency`), so one request that
        waits (for an answer, or before its retry) holds up no other; the account's
        shared pace (messaging.ratelimit) still spaces them all.
        """
        refusal = _Refusal()
        send = partial(self._send_batch, refusal=refusal)
        done = map_in_threads(send, self._batches(messages), self.concurrency(), "send")
        return [result for results in done for result in results]

    def rows_per_claim(self) -> int:
        """Rows the engine should claim per round for this account.

        A bulk provider's `claim_size` (a full request); else HERALD_DISPATCH_BATCH_SIZE,
        or, for single sends in flight several at once, about CLAIM_SECONDS of the
        account's pace, so the few that wait for a retry at a claim's end hold up
        little; never more than a quarter of the lease's worth.
        """
        if self.claim_size:
            return self.claim_size
        rows = settings.HERALD_DISPATCH_BATCH_SIZE
        rate = self.account.rate_limit
        if self.one_per_request() and self.concurrency() > 1 and rate > 0:
            lease_share = rate * settings.HERALD_SEND_LEASE_SECONDS / 4
            rows = max(rows, int(min(rate * CLAIM_SECONDS, lease_share)))
        return rows

    def one_per_request(self) -> bool:
        """Whether each message of a send is a request of its own (single sends)."""
        return self.max_batch == 1

    def concurrency(self) -> int:
        """Requests in flight at once for one send: the account's `concurrency` option,
        else HERALD_SEND_CONCURRENCY; 1 when the option is not a number."""
        configured = self.account.options.get("concurrency", settings.HERALD_SEND_CONCURRENCY)
        try:
            return max(1, int(configured))
        except (TypeError, ValueError):
            return 1

    def _send_batch(self, batch: Sequence[Message], refusal: _Refusal) -> list[SendResult]:
        """One provider request's worth: its results, or the error on each of its messages."""
        if refusal.error is not None:
            return [SendResult(m, error=refusal.error) for m in batch]
        if _lease_running_out(batch):
            # Waiting (for the rate limit, say) used up our claim: once it lapses the
            # rows are in doubt and may be sent by others. Give them back instead.
            late = RetryableError("claim ran out before sending", code=LEASE_NEAR_END)
            return [SendResult(m, error=late) for m in batch]
        try:
            payload = self.build_payload(batch)
            response = self.post_to_provider(payload, batch)
            return self.parse_response(response, batch)
        except AccountError as exc:
            refusal.error = exc
            return [SendResult(m, error=exc) for m in batch]
        except ProviderError as exc:
            return [SendResult(m, error=exc) for m in batch]

    def check(self) -> str:
        """Authenticate (and read the balance where the provider has one); a short summary.

        Raises a ProviderError with the provider's own words when the account cannot send.
        """
        return "ok (nothing to check)"

    def find_sent(self, messages: Sequence[Message]) -> dict[int, str]:
        """For messages in doubt: {pk: provider message id} of those the provider has.

        A message left out is one the provider has no record of, so it may be sent
        again. Raise a ProviderError when that cannot be told (nothing is resent then).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot look up sends in doubt")

    def can_find(self, message: Message) -> bool:
        """Whether find_sent can tell about this message at all (if not, it stays for staff)."""
        return True

    def lookup_statuses(self, messages: Sequence[Message]) -> list[StatusUpdate]:
        """Ask the provider what became of sent messages; only news is returned."""
        raise NotImplementedError(f"{type(self).__name__} cannot look up message status")

    def fetch_inbound(
        self, cursor: dict[str, Any], page_budget: int
    ) -> tuple[list[Incoming], dict[str, Any]]:
        """Replies that arrived since `cursor`, reading at most `page_budget` pages.

        Returns them with the cursor to pass next time (JSON-serialisable; `{}` the first
        time). A message may come again after a failure or a resumed walk: the caller
        dedupes by provider_message_id. Raises a ProviderError when the list cannot be
        read; the old cursor stays good then.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot poll for inbound messages")

    def open_conversations(self) -> set[str] | None:
        """The numbers (E.164) whose WhatsApp 24 h window is open now; None: cannot tell."""
        return None

    def balance(self) -> Balance | None:
        """The account's balance at the provider; None when the provider does not say."""
        return None

    # The three steps a provider module fills in.

    def build_payload(self, batch: Sequence[Message]) -> Any:
        raise NotImplementedError

    def post_to_provider(self, payload: Any, batch: Sequence[Message]) -> Any:
        raise NotImplementedError

    def parse_response(self, response: Any, batch: Sequence[Message]) -> list[SendResult]:
        raise NotImplementedError

    def _batches(self, messages: Sequence[Message]) -> Iterator[Sequence[Message]]:
        for start in range(0, len(messages), self.max_batch):
            yield messages[start : start + self.max_batch]
