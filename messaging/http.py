"""The one HTTP layer every provider backend speaks through.

- One pooled `requests.Session` per process and provider address (keep-alive,
  connect and read timeouts).
- The account's shared pace (messaging.ratelimit) before every request, and the
  provider's own signals fed back into it: `X-RateLimit-Remaining: 0` holds every
  worker until `X-RateLimit-Reset` (or the 429's Retry-After); a 429 that does not
  say the account is spent waits out its own Retry-After while the others go on.
- One retry policy (exponential backoff with full jitter, never sooner than the
  provider asked, bounded): used here for answers that prove the provider did
  nothing (429, 503, a connection that never opened), and by the send engine
  for whole messages (messaging.dispatch).
- What the transport did is turned into the error hierarchy: could not
  connect -> RetryableError; the request went out but no answer came back
  (read timeout, dropped connection) -> InDoubtError for a send, because the
  provider may have accepted it, and RetryableError for a lookup, which is safe
  to repeat.

Backends read the provider's own body for everything else.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from messaging import ratelimit
from messaging.exceptions import InDoubtError, RetryableError
from messaging.models import ProviderAccount

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
POOL_SIZE = 16


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, never sooner than the provider asked."""

    attempts: int
    base: float
    cap: float
    #: A setting that, when set, gives the first wait instead of `base`.
    base_setting: str = ""

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = getattr(settings, self.base_setting, self.base) if self.base_setting else self.base
        ceiling = min(self.cap, base * 2 ** max(attempt - 1, 0))
        return max(random.uniform(ceiling / 2, ceiling), retry_after or 0.0)


#: Within one request: a short, bounded wait for answers that prove nothing was done.
REQUEST_RETRY = RetryPolicy(
    attempts=5, base=0.5, cap=5.0, base_setting="HERALD_REQUEST_RETRY_SECONDS"
)
#: Whole messages, between dispatch rounds (attempt limit: HERALD_MAX_SEND_ATTEMPTS).
MESSAGE_RETRY = RetryPolicy(attempts=0, base=30.0, cap=3600.0)

_sessions: dict[str, requests.Session] = {}
_sessions_lock = threading.Lock()


def session_for(base_url: str) -> requests.Session:
    """This process's pooled session for one provider address, shared by its threads.

    Its pool keeps a connection open for each request a worker has in flight at once
    (HERALD_SEND_CONCURRENCY; an account's own `concurrency` beyond it opens more).
    """
    with _sessions_lock:
        session = _sessions.get(base_url)
        if session is None:
            session = requests.Session()
            # Only failures before the request left us are retried by urllib3 itself;
            # a read error may mean the provider acted on it, so that is ours to judge.
            retries = Retry(
                total=None, connect=2, read=0, status=0, other=0, redirect=0, backoff_factor=0.2
            )
            size = max(POOL_SIZE, settings.HERALD_SEND_CONCURRENCY)
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=size, max_retries=retries)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _sessions[base_url] = session
        return session


class ProviderClient:
    """Requests to one account's provider, paced, timed out and retried by one policy."""

    def __init__(
        self,
        account: ProviderAccount,
        base_url: str,
        headers: dict[str, str] | None = None,
        policy: RetryPolicy = REQUEST_RETRY,
    ) -> None:
        self.account = account
        self.base_url = base_url.rstrip("/")
        self.headers = headers or {}
        self.policy = policy
        options = account.options or {}
        self.timeout = (
            float(options.get("connect_timeout", CONNECT_TIMEOUT)),
            float(options.get("read_timeout", READ_TIMEOUT)),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        sends: bool,
        idempotent: bool = False,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """One logical request; returns the provider's answer, whatever its status.

        `sends` says whether the request asks the provider to do something that
        must not happen twice; it decides what a lost answer means. `idempotent` says
        the provider knows a repeat of it (our client_ref), so a 5xx answer to it, or an
        answer lost on the way back, is asked again after a short backoff, as a lookup's
        would be, rather than left to the engine's next round or a reconcile.
        """
        url = self.base_url + path
        all_headers = {**self.headers, **(headers or {})}
        attempt = 0
        while True:
            attempt += 1
            ratelimit.acquire(self.account)
            started = time.monotonic()
            try:
                response = session_for(self.base_url).request(
                    method,
                    url,
                    json=json,
                    params=params,
                    headers=all_headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                error = self._transport_error(exc, sends)
                lost = isinstance(error, InDoubtError)  # it went out; its answer did not come
                if not (idempotent and lost) or attempt >= self.policy.attempts:
                    raise error from exc
                # The provider knows a repeat of this request by its key: asking again
                # cannot do it twice, and tells us whether the first one was taken.
                logger.info("%s %s: asked again after a lost answer", method, path)
                time.sleep(self.policy.delay(attempt))
                continue
            elapsed = time.monotonic() - started
            logger.debug("%s %s -> %s in %.3fs", method, path, response.status_code, elapsed)
            self._note_rate_headers(response)
            asked = retry_after(response)
            worth = self._worth_retrying(response, sends and not idempotent)
            if not worth or attempt >= self.policy.attempts:
                return response
            wait = self.policy.delay(attempt, asked)
            if wait > self.policy.cap:
                return response  # a long wait is the engine's to schedule, not ours to sleep
            # This request's own wait (the account-wide one is _note_rate_headers'):
            # the other requests go on meanwhile.
            time.sleep(wait)

    def _worth_retrying(self, response: requests.Response, sends: bool) -> bool:
        # 429 and 503 say the request was turned away; other 5xx may have done something.
        if response.status_code in (429, 503):
            return True
        return not sends and response.status_code in (500, 502, 504)

    def _note_rate_headers(self, response: requests.Response) -> None:
        """Feed the provider's word on the account's pace back into the shared limiter.

        `X-RateLimit-Remaining: 0` says the account's bucket is empty: every worker waits
        until `X-RateLimit-Reset` (a 429's Retry-After, if later). A 429 that does not
        say so (no rate headers, or tokens left) is that request's own: it waits out its
        Retry-After before it is asked again, rather than every worker stopping for a
        second on a lone refusal.
        """
        remaining = response.headers.get("X-RateLimit-Remaining", "").strip()
        emptied = remaining.lstrip("-").isdigit() and int(remaining) <= 0
        if response.status_code == 429:
            if emptied:
                ratelimit.hold(self.account, retry_after(response) or 1.0)
            return
        if emptied:
            reset = response.headers.get("X-RateLimit-Reset", "")
            wait = float(reset) - time.time() if reset.isdigit() else 1.0
            ratelimit.hold(self.account, max(wait, 1.0 / max(self.account.rate_limit, 1.0)))

    def _transport_error(self, exc: requests.RequestException, sends: bool) -> Exception:
        where = self.base_url
        if isinstance(exc, requests.ConnectTimeout) or _never_connected(exc):
            return RetryableError(f"could not connect to {where}: {_reason(exc)}", code="CONNECT")
        if isinstance(exc, requests.ReadTimeout):
            text = f"no answer from {where} within {self.timeout[1]:g}s after the request was sent"
            code = "READ_TIMEOUT"
        elif isinstance(exc, requests.ConnectionError):
            text = f"{where} closed the connection before answering: {_reason(exc)}"
            code = "CONNECTION_DROPPED"
        else:
            return RetryableError(f"request to {where} failed: {_reason(exc)}", code="HTTP")
        if sends:
            return InDoubtError(text + "; it may have been accepted", code=code)
        return RetryableError(text, code=code)


def _never_connected(exc: requests.RequestException) -> bool:
    """True when the error shows no byte of the request can have reached the provider."""
    if isinstance(exc, requests.exceptions.SSLError | requests.exceptions.InvalidURL):
        return True
    text = repr(exc)
    return any(
        marker in text
        for marker in ("NewConnectionError", "NameResolutionError", "ConnectTimeoutError")
    )


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), when the provider gave one."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def json_or_none(response: requests.Response) -> Any:
    """The body as JSON, or None when it is not JSON at all."""
    try:
        return response.json()
    except ValueError:
        return None
