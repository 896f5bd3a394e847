"""An integration's webhook endpoint on loopback, for the outgoing webhooks' tests and bench.

A threading HTTP/1.1 server (keep-alive, as a real endpoint) that keeps every request it
is sent and checks each signature with the standardwebhooks library, as a receiver
following the Standard Webhooks spec would: Herald's own signing code is not used here.
It answers with `status` (a number, or a function of the request's ordinal from 1).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names in lower case
    body: bytes
    #: Which of the receiver's secrets the signature held with (None: none of them).
    verified_with: str | None

    @property
    def payload(self) -> Any:
        return json.loads(self.body)

    @property
    def event_type(self) -> str:
        return str(self.payload["type"])


class _Server(ThreadingHTTPServer):
    # Two senders open up to 64 connections at once. With the standard backlog of 5, a
    # busy machine accepting slowly dropped some of them, and those deliveries waited
    # for a retry (the fake gateway keeps 128 for the same reason).
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A keep-alive connection the sender closed is no error of the test's."""


class Receiver:
    def __init__(
        self, status: int | Callable[[int], int] = 200, answer: bytes = b"ok", port: int = 0
    ) -> None:
        self.status = status
        self.answer = answer
        self.secrets: list[str] = []
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/herald"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.received if r.event_type == event_type]

    def wait_for(self, count: int, seconds: float = 10.0) -> list[Received]:
        ends = time.monotonic() + seconds
        while len(self.received) < count and time.monotonic() < ends:
            time.sleep(0.01)
        return list(self.received)

    def tally(self) -> dict[str, int]:
        """What it got: requests, distinct webhook-ids, signatures that held."""
        got = list(self.received)
        return {
            "received": len(got),
            "unique": len({r.headers.get("webhook-id") for r in got}),
            "verified": sum(1 for r in got if r.verified_with),
        }

    def serve(self) -> None:
        """Answer in this thread until the process ends (a receiver process of its own)."""
        self._server.serve_forever()

    def _keep(self, headers: dict[str, str], body: bytes) -> int:
        verified = None
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified = secret
            break
        with self._lock:
            self.received.append(Received(headers, body, verified))
            ordinal = len(self.received)
        return self.status(ordinal) if callable(self.status) else self.status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                status = receiver._keep(headers, body)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(receiver.answer)))
                self.end_headers()
                self.wfile.write(receiver.answer)

            def do_GET(self) -> None:
                """The tally, for a receiver in another process."""
                body = json.dumps(receiver.tally()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
