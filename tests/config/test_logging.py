"""Log lines as JSON, with phone numbers, message bodies and credentials masked.

The real paths run under the handler the settings build (config.logging.logging_config);
a raw handler beside it shows that those paths do log the numbers, so the masked output
proves the filter, not a quiet path.
"""

import io
import json
import logging
import logging.config
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from config.logging import PHONE_MASK, SECRET_MASK, logging_config, redact_text
from messaging.dispatch import reconcile_in_doubt, send_claimed
from messaging.http import REQUEST_RETRY
from messaging.models import Message, ProviderAccount
from tests.conftest import GATEWAY_CREDENTIALS, phone
from tests.fakegateway import FakeGateway

ROOT = Path(__file__).resolve().parents[2]
BODY = "Your code is K7Q-CONFIDENTIAL"
# The credentials distinctive enough to look for (not buzzbip's "herald" / "secret").
SECRETS = [
    GATEWAY_CREDENTIALS["bulksmsrates"]["api_key"],
    GATEWAY_CREDENTIALS["bulksmsrates"]["api_secret"],
    GATEWAY_CREDENTIALS["bulksmsrates"]["webhook_secret"],
    GATEWAY_CREDENTIALS["bwatmesaj"]["api_token"],
]


class Capture:
    def __init__(self) -> None:
        self.raw: list[str] = []
        self.stream = io.StringIO()

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    @property
    def text(self) -> str:
        return self.stream.getvalue()


class RawHandler(logging.Handler):
    """What a record held before any filter touched it."""

    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(f"{record.getMessage()} {vars(record)!r}")


@contextmanager
def production_logging(json_lines: bool = True) -> Iterator[Capture]:
    """The settings' console handler (formatter and filter), on the root logger at DEBUG."""
    config = logging_config(json_lines=json_lines, level="DEBUG")
    config["loggers"] = {"herald.test.sink": {"handlers": ["console"], "propagate": False}}
    del config["root"]
    logging.config.dictConfig(config)
    sink = logging.getLogger("herald.test.sink")
    handler = sink.handlers[0]
    sink.removeHandler(handler)
    capture = Capture()
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(capture.stream)
    raw = RawHandler(capture.raw)
    root = logging.getLogger()
    level = root.level
    root.handlers.insert(0, raw)  # first, so it sees each record before the filter
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(raw)
        root.removeHandler(handler)
        root.setLevel(level)


def digits_of(number: str) -> str:
    return number.lstrip("+")[2:]  # national significant digits: in any spelling of it


def assert_clean(text: str, numbers: list[str]) -> None:
    for number in numbers:
        assert digits_of(number) not in text, number
    assert BODY not in text and "CONFIDENTIAL" not in text
    for secret in SECRETS:
        assert secret not in text, secret


@pytest.mark.django_db
def test_a_send_in_doubt_and_its_lookup_log_no_number_body_or_credential(
    make_account: Callable[..., ProviderAccount], gateway: FakeGateway, settings: Any
) -> None:
    settings.HERALD_RECONCILE_AFTER_SECONDS = 0
    account = make_account("bulksmsrates", read_timeout=0.3, bulk=False, concurrency=1)
    # Every answer to the first send is lost (each time it is asked again by client_ref).
    gateway.inject("/v1/sms/send", "drop", times=REQUEST_RETRY.attempts)
    numbers = [phone(7), phone(8)]
    rows = [
        Message.objects.create(
            provider_account=account,
            phone=n,
            sender=account.sender,
            body=BODY,
            client_ref=Message.new_client_ref(),
        )
        for n in numbers
    ]
    with production_logging() as capture:
        send_claimed(Message.objects.filter(pk__in=[m.pk for m in rows]).claim(10))
        assert reconcile_in_doubt() == {"sent": 1, "resend": 0}
    # The lookups asked for each number in the URL, and urllib3 logged it there.
    assert any(digits_of(numbers[0]) in line for line in capture.raw)
    assert_clean(capture.text, numbers)
    assert any(line["logger"] == "urllib3.connectionpool" for line in capture.lines)
    lookups = [line for line in capture.lines if "/v1/reports/messages?" in line["message"]]
    assert lookups and all("destination=[phone]" in line["message"] for line in lookups)
    assert any(
        line["level"] == "WARNING" and "in doubt" in line["message"] for line in capture.lines
    )


@pytest.mark.django_db
def test_a_test_send_from_the_shell_logs_no_number_body_or_credential(
    make_account: Callable[..., ProviderAccount], gateway: FakeGateway
) -> None:
    make_account("buzzbip")
    number = phone(42)
    with production_logging() as capture:
        call_command("provider", "send-test", "buzzbip", "--to", number, "--body", BODY)
    assert [m.to for m in gateway.messages.values()] == [number]
    assert capture.raw, "the send logged nothing at DEBUG"
    assert_clean(capture.text, [number])


def test_extra_fields_and_mapping_arguments_named_like_secrets_are_masked() -> None:
    log = logging.getLogger("herald.test")
    with production_logging() as capture:
        log.info(
            "sent to %(to)s: %(body)s (%(count)d)",
            {"to": "+447911123456", "body": BODY, "count": 3},
        )
        log.warning(
            "provider said no",
            extra={
                "sms_body": BODY,
                "api_key": SECRETS[0],
                "Authorization": "Bearer " + SECRETS[3],
                "webhook_secret": SECRETS[2],
                "payload": {"text": BODY, "to": "07911 123456", "segments": 2},
                "attempt": 2,
            },
        )
    first, second = capture.lines
    assert first["message"] == f"sent to {PHONE_MASK}: {SECRET_MASK} (3)"
    assert second["sms_body"] == second["api_key"] == SECRET_MASK
    assert second["Authorization"] == second["webhook_secret"] == SECRET_MASK
    assert second["payload"] == {"text": SECRET_MASK, "to": PHONE_MASK, "segments": 2}
    assert second["attempt"] == 2
    assert_clean(capture.text, ["+447911123456"])


def test_a_traceback_is_masked_in_the_json_line() -> None:
    log = logging.getLogger("herald.test")
    with production_logging() as capture:
        try:
            raise ValueError(f"provider refused +447911123456: {BODY!r}")
        except ValueError:
            log.exception("send failed")
    (line,) = capture.lines
    assert "Traceback" in line["exc_info"] and f"refused {PHONE_MASK}" in line["exc_info"]
    assert "7911123456" not in capture.text


class ProviderRefused(Exception):
    """Like a provider error: its text carries the request it was about."""


def raise_with_number_and_secrets() -> None:
    headers = {"Authorization": f"Bearer {SECRETS[3]}", "X-API-Key": SECRETS[0]}
    try:
        raise ProviderRefused(f"refused {{'to': '+447911123456', 'api_secret': '{SECRETS[1]}'}}")
    except ProviderRefused as exc:
        raise RuntimeError(f"send failed with {headers} via https://u:{SECRETS[2]}@gw/") from exc


@pytest.mark.parametrize("json_lines", [True, False])
def test_an_exceptions_text_and_traceback_are_masked_like_the_message(json_lines: bool) -> None:
    log = logging.getLogger("herald.test")
    with production_logging(json_lines=json_lines) as capture:
        try:
            raise_with_number_and_secrets()
        except RuntimeError as exc:
            log.exception("send failed: %s", exc)
            unmasked = "".join(traceback.format_exception(exc))
    # The traceback held them all (the exception's text and its cause's)...
    assert all(secret in unmasked for secret in SECRETS) and "7911123456" in unmasked
    # ...the line keeps the traceback and both texts, with each value masked.
    assert "Traceback" in capture.text and "ProviderRefused" in capture.text
    assert f"'to': '{PHONE_MASK}', 'api_secret': '{SECRET_MASK}'" in capture.text
    assert f"'Authorization': '{SECRET_MASK}'" in capture.text
    assert_clean(capture.text, ["+447911123456"])


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("api_key=abc123&to=1", f"api_key={SECRET_MASK}&to=1"),
        ('{"token": "ey.J hb", "segments": 2}', f'{{"token": "{SECRET_MASK}", "segments": 2}}'),
        ("Authorization: Basic dXNlcjpwdw== next", f"Authorization: {SECRET_MASK} next"),
        ("got Bearer 13|abcdef back", f"got Bearer {SECRET_MASK} back"),
        (
            "postgres://herald:pw-1@db:5432/herald",
            f"postgres://herald:{SECRET_MASK}@db:5432/herald",
        ),
        ("X-API-Secret: s3cr3t", f"X-API-Secret: {SECRET_MASK}"),
    ],
)
def test_secrets_written_out_in_free_text_are_masked(text: str, masked: str) -> None:
    assert redact_text(text) == masked


@pytest.mark.parametrize(
    "text",
    ["tokens: 5", "token_bucket: 3", "password_reset=True", "Signature verification failed"],
)
def test_words_near_secret_names_stay_readable(text: str) -> None:
    assert redact_text(text) == text


def test_plain_lines_are_masked_too() -> None:
    with production_logging(json_lines=False) as capture:
        logging.getLogger("herald.test").info("to %s", "+447911123456")
    assert capture.text.rstrip().endswith(f"herald.test to {PHONE_MASK}")


@pytest.mark.parametrize(
    "number",
    [
        "+447911123456",
        "+44 7911 123456",
        "+44 (0)7911 123456",
        "07911 123456",
        "07911-123456",
        "(020) 7946 0958",
        "%2B447911123456",
        "447911123456",
        "+1 415 555 2671",
    ],
)
def test_numbers_in_every_common_spelling_are_masked(number: str) -> None:
    assert redact_text(f"to={number}&x=1") == f"to={PHONE_MASK}&x=1"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-23 19:50:33,123",
        "ref 5f0c1a2b3c4d1234567e9f",  # digits inside a uuid's hex
        "Listening at: http://127.0.0.1:8731 (13285)",
        "10.20.30.40",
        "batch of 500 in 0.123s",
        '"POST /v1/sms/send HTTP/1.1" 400 1067',
    ],
)
def test_dates_ids_addresses_and_counts_stay_readable(text: str) -> None:
    assert redact_text(text) == text


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "LOG_FORMAT", "SENTRY_DSN")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


LOG_ONE_LINE = (
    "import django, logging; django.setup(); "
    "logging.getLogger('herald.probe').warning('to %s', '+447911123456', extra={'body': 'Hi'})"
)


def test_production_settings_write_json_lines_and_debug_writes_plain_ones() -> None:
    production = run_python(LOG_ONE_LINE, DEBUG="False")
    lines = [json.loads(x) for x in production.stderr.splitlines() if "herald.probe" in x]
    assert lines == [
        {
            "time": lines[0]["time"],
            "level": "WARNING",
            "logger": "herald.probe",
            "message": f"to {PHONE_MASK}",
            "body": SECRET_MASK,
        }
    ], production.stderr
    development = run_python(LOG_ONE_LINE, DEBUG="True")
    assert f"WARNING herald.probe to {PHONE_MASK}" in development.stderr
    assert "7911123456" not in development.stderr + production.stderr
    forced = run_python(LOG_ONE_LINE, DEBUG="True", LOG_FORMAT="json")
    assert '"message": "to [phone]"' in forced.stderr
