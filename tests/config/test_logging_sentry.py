"""Sentry: only with SENTRY_DSN, and what it sends is masked like the log lines.

A loopback HTTP server stands in for Sentry and keeps every envelope the SDK posts.
"""

import gzip
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from config.logging import PHONE_MASK, SECRET_MASK, sentry_before_send

ROOT = Path(__file__).resolve().parents[2]
NUMBER = "+447911123456"
BODY = "Your code is K7Q-CONFIDENTIAL"
TOKEN = "13|testtoken-do-not-leak"


class FakeSentry(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receive)
        self.envelopes: list[bytes] = []

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.server_address[1]}/1"


class _Receive(BaseHTTPRequestHandler):
    server: FakeSentry

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.envelopes.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_sentry() -> Iterator[FakeSentry]:
    server = FakeSentry()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("SENTRY_DSN", "DEBUG")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "False", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_a_dsn_the_sentry_sdk_is_never_imported() -> None:
    result = run_python("import django, sys; django.setup(); print('sentry_sdk' in sys.modules)")
    assert result.stdout.strip() == "False", result.stderr


REPORT_AN_ERROR = f"""
import django, logging, sentry_sdk
django.setup()
log = logging.getLogger("herald.probe")
try:
    raise RuntimeError("provider refused {NUMBER}")
except RuntimeError:
    extra = {{"body": "{BODY}", "api_token": "{TOKEN}"}}
    log.exception("send to %s failed", "{NUMBER}", extra=extra)
log.error("marker-event-two for %(phone)s", {{"phone": "{NUMBER}"}})
sentry_sdk.flush(timeout=10)
print("flushed")
"""


def test_errors_reach_sentry_without_numbers_bodies_or_credentials(
    fake_sentry: FakeSentry,
) -> None:
    result = run_python(REPORT_AN_ERROR, SENTRY_DSN=fake_sentry.dsn)
    assert "flushed" in result.stdout, result.stderr
    sent = b"\n".join(fake_sentry.envelopes).decode()
    # Both events arrived, with their text and the exception type...
    assert "send to [phone] failed" in sent and "marker-event-two" in sent
    assert "RuntimeError" in sent and f"provider refused {PHONE_MASK}" in sent
    # ...and nothing personal or secret, in any field (message params, extra, breadcrumbs).
    assert "7911123456" not in sent
    assert "CONFIDENTIAL" not in sent
    assert TOKEN not in sent
    assert '"send_default_pii": true' not in sent.lower()


REPORT_AN_UNCAUGHT_ERROR = f"""
import django, sentry_sdk
django.setup()
text = "refused {NUMBER}: {{'api_token': '{TOKEN}'}}, Authorization: Bearer {TOKEN}"
try:
    raise RuntimeError(text)
except RuntimeError:
    sentry_sdk.capture_exception()
sentry_sdk.flush(timeout=10)
print("flushed")
"""


def test_an_exceptions_text_reaches_sentry_with_its_number_and_secrets_masked(
    fake_sentry: FakeSentry,
) -> None:
    result = run_python(REPORT_AN_UNCAUGHT_ERROR, SENTRY_DSN=fake_sentry.dsn)
    assert "flushed" in result.stdout, result.stderr
    sent = b"\n".join(fake_sentry.envelopes).decode()
    assert "RuntimeError" in sent
    assert f"refused {PHONE_MASK}: {{'api_token': '{SECRET_MASK}'}}" in sent
    assert "7911123456" not in sent and "testtoken" not in sent


def test_before_send_masks_request_headers_query_strings_and_breadcrumbs() -> None:
    event = {
        "message": f"failed for {NUMBER}",
        "request": {
            "url": "https://herald.example.com/contacts/",
            "query_string": "q=%2B447911123456",
            "headers": {"Authorization": "Bearer abc", "Cookie": "sessionid=xyz", "Accept": "*/*"},
            "data": {"body": BODY},
        },
        "breadcrumbs": {
            "values": [{"message": f"to {NUMBER}", "data": {"sms_body": BODY, "segments": 1}}]
        },
        "exception": {"values": [{"type": "ValueError", "value": f"bad {NUMBER}"}]},
    }
    cleaned = sentry_before_send(event, {})
    assert cleaned["message"] == f"failed for {PHONE_MASK}"
    request = cleaned["request"]
    assert request["query_string"] == f"q={PHONE_MASK}"
    assert request["headers"] == {
        "Authorization": SECRET_MASK,
        "Cookie": SECRET_MASK,
        "Accept": "*/*",
    }
    assert request["data"] == {"body": SECRET_MASK}
    crumb = cleaned["breadcrumbs"]["values"][0]
    assert crumb == {
        "message": f"to {PHONE_MASK}",
        "data": {"sms_body": SECRET_MASK, "segments": 1},
    }
    assert cleaned["exception"]["values"][0]["value"] == f"bad {PHONE_MASK}"
