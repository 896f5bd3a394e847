"""Provider secrets never leave the database in clear: not in logs, pages, exports or the CLI.

Accounts are given recognisable secret values; sends (successful, refused, failing with 500s),
checks, webhooks, every page about them and every export are then searched for those values.
"""

import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db.models import Model
from django.test import Client, override_settings
from django.urls import path, reverse

from audit.models import AuditEvent
from campaigns.models import Campaign
from contacts.models import Contact, Group
from messaging.crypto import CredentialsUnreadable
from messaging.models import Message, ProviderAccount, StatusEvent
from tests.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

BUZZ_PASSWORD = "Zq9buzzPASSWORDx7781"
BULK_KEY = "Zq9bulkAPIKEYx9913"
BULK_SECRET = "Zq9bulkAPISECRETx3320"
BULK_WEBHOOK = "Zq9bulkWHSECx4471"
BWAT_TOKEN = "13|Zq9bwatTOKENx5562"
SECRETS = (BUZZ_PASSWORD, BULK_KEY, BULK_SECRET, BULK_WEBHOOK, BWAT_TOKEN)
CREDENTIALS = {
    "buzzbip": {"username": "herald", "password": BUZZ_PASSWORD},
    "bulksmsrates": {
        "api_key": BULK_KEY,
        "api_secret": BULK_SECRET,
        "webhook_secret": BULK_WEBHOOK,
    },
    "bwatmesaj": {"api_token": BWAT_TOKEN},
}


def assert_no_secret(text: str, where: str) -> None:
    found = [secret for secret in SECRETS if secret in text or secret.lower() in text.lower()]
    assert not found, f"{where} shows {found}"


def run(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("provider", *args, stdout=out, stderr=err)
    except CommandError as exc:
        err.write(str(exc))
    return out.getvalue() + err.getvalue()


@pytest.fixture
def secret_gateway(gateway: FakeGateway) -> FakeGateway:
    gateway.buzzbip_users = {"herald": BUZZ_PASSWORD}
    gateway.bulk_keys = {BULK_KEY: BULK_SECRET}
    gateway.bwat_tokens = {BWAT_TOKEN}
    return gateway


@pytest.fixture
def accounts(secret_gateway: FakeGateway) -> dict[str, ProviderAccount]:
    made = {}
    for backend, credentials in CREDENTIALS.items():
        account = ProviderAccount(
            name=backend,
            backend=backend,
            base_url=secret_gateway.url,
            sender="Herald",
            rate_limit=1000,
            options={"read_timeout": 2},
        )
        account.set_credentials(credentials)
        account.save()
        made[backend] = account
    return made


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    """Each record as a handler would format it, with arguments, extras and traceback."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    lines = []
    for record in caplog.records:
        lines.append(formatter.format(record))
        lines.append(repr({k: v for k, v in vars(record).items() if k not in ("msg", "args")}))
    return "\n".join(lines)


def send_through_every_account(
    gateway: FakeGateway,
    accounts: dict[str, ProviderAccount],
    marketer: User,
    approver: User,
) -> tuple[list[str], Campaign]:
    """CLI checks and test sends, good and failing, and one campaign with 500s along the way."""
    outputs = [run("list")]
    for name in accounts:
        outputs.append(run("check", name))
        outputs.append(run("send-test", name, "--to", "+447911200001", "--body", "hello"))
    # Two tries, each asked three times (a single send's client_ref makes a 5xx safe to repeat).
    gateway.inject("/v1/sms/", "status", status=500, times=6)
    outputs.append(run("send-test", "bulksmsrates", "--to", "+447911200002", "--body", "hi"))
    gateway.bulk_keys = {}  # the provider no longer knows the key: every call refused
    outputs.append(run("check", "bulksmsrates"))
    gateway.bulk_keys = {BULK_KEY: BULK_SECRET}

    group = Group.objects.create(name="Customers")
    for i in range(3):
        Contact.objects.create(phone=f"+4479112001{i:02d}", first_name=f"N{i}").groups.add(group)
    campaign = Campaign.objects.create(
        name="Spring", provider_account=accounts["bulksmsrates"], body="Hi", created_by=marketer
    )
    campaign.groups.add(group)
    gateway.inject("/v1/sms/", "status", status=500)
    campaign.submit(by=marketer)
    campaign.approve(by=approver)
    campaign.refresh_from_db()
    return outputs, campaign


def pages_about(
    accounts: dict[str, ProviderAccount], campaign: Campaign
) -> list[tuple[str, dict[str, Any]]]:
    pages: list[tuple[str, dict[str, Any]]] = [
        ("/", {}),
        (f"/campaigns/{campaign.pk}/", {}),
        (f"/campaigns/{campaign.pk}/progress/", {}),
        (f"/campaigns/{campaign.pk}/export.csv", {}),
        ("/campaigns/new/", {}),
        ("/reports/", {}),
        ("/reports/", {"format": "csv"}),
        ("/admin/", {}),
        ("/admin/messaging/provideraccount/", {}),
        ("/admin/messaging/message/", {}),
        ("/admin/messaging/statusevent/", {}),
        ("/admin/messaging/webhookevent/", {}),
        ("/admin/campaigns/campaign/", {}),
        (f"/admin/campaigns/campaign/{campaign.pk}/change/", {}),
        ("/admin/audit/auditevent/", {}),
    ]
    for account in accounts.values():
        base = f"/admin/messaging/provideraccount/{account.pk}"
        pages += [(f"{base}/change/", {}), (f"{base}/history/", {}), (f"{base}/delete/", {})]
    for message in Message.objects.all():
        pages.append((f"/admin/messaging/message/{message.pk}/change/", {}))
    for event in StatusEvent.objects.all():
        pages.append((f"/admin/messaging/statusevent/{event.pk}/change/", {}))
    return pages


def body_of(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def test_no_secret_in_logs_pages_exports_audit_or_cli_output(
    client: Client,
    secret_gateway: FakeGateway,
    accounts: dict[str, ProviderAccount],
    marketer: User,
    approver: User,
    make_user: Callable[..., User],
    everything_logged: pytest.LogCaptureFixture,
) -> None:
    outputs, campaign = send_through_every_account(secret_gateway, accounts, marketer, approver)
    bulk = accounts["bulksmsrates"]
    sent = Message.objects.filter(provider_account=bulk).exclude(provider_message_id="").first()
    assert sent is not None, "the campaign sent nothing: the test would prove nothing"
    webhook = reverse("messaging:bulksmsrates-webhook", args=[bulk.name])
    answers = []
    for secret in (BULK_WEBHOOK, "a-wrong-secret"):
        body, headers = secret_gateway.dlr_request(sent.provider_message_id, secret=secret)
        meta: dict[str, Any] = {
            "HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()
        }
        meta.pop("HTTP_CONTENT_TYPE")
        response = client.post(webhook, body, content_type="application/json", **meta)
        answers.append(response.status_code)
        assert_no_secret(response.content.decode(), "webhook answer")
    assert answers[0] == 200 and answers[1] >= 400

    admin = make_user("root")
    User.objects.filter(pk=admin.pk).update(is_superuser=True)
    client.force_login(admin)
    seen = 0
    for url, query in pages_about(accounts, campaign):
        response = client.get(url, query)
        assert response.status_code == 200, url
        assert_no_secret(body_of(response), f"{url} {query}")
        seen += 1
    export = client.post(
        "/admin/contacts/contact/export/",
        {"format": "0", "resource": "0", "contactresource_phone": "on"},
    )
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    assert_no_secret(body_of(export), "contacts export")
    # The provider-account check action reports each account's state in messages.
    checked = client.post(
        "/admin/messaging/provideraccount/",
        {"action": "check_connection", "_selected_action": [a.pk for a in accounts.values()]},
        follow=True,
    )
    assert "OK" in checked.content.decode()
    assert_no_secret(checked.content.decode(), "check_connection action")

    for output in outputs:
        assert_no_secret(output, "provider CLI")
    assert any("error" in output.lower() for output in outputs)  # failures were exercised
    assert_no_secret(repr(list(AuditEvent.objects.values())), "audit log")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT).count() >= 3
    assert_no_secret(logged_text(everything_logged), "logs")
    assert any(r.levelno >= logging.WARNING for r in everything_logged.records)
    assert seen > 20


def explode(request: Any) -> Any:
    """A view with a bug, holding decrypted credentials when it fails."""
    account = ProviderAccount.objects.get(name="bulksmsrates")
    credentials = account.credentials
    headers = {"Authorization": f"Bearer {credentials['api_key']}"}  # as a backend builds it
    basic_auth = ("herald", credentials["api_secret"])
    assert headers and basic_auth
    raise RuntimeError(f"unexpected state for {account.name} ({len(credentials)} credentials)")


urlpatterns = [path("explode/", explode)]
handler500 = "config.views.server_error"  # as config.urls answers a failure


@pytest.mark.parametrize("debug", [False, True], ids=["production", "DEBUG on (make run)"])
def test_a_500_page_and_its_log_show_no_secret(
    accounts: dict[str, ProviderAccount], everything_logged: pytest.LogCaptureFixture, debug: bool
) -> None:
    client = Client(raise_request_exception=False)
    with override_settings(ROOT_URLCONF=__name__, DEBUG=debug):
        response = client.get("/explode/")
    assert response.status_code == 500
    if debug:  # Django's technical page, with every frame's variables
        assert "basic_auth" in response.content.decode()
    assert_no_secret(response.content.decode(), "500 page")
    text = logged_text(everything_logged)
    assert "unexpected state for bulksmsrates" in text  # the error was logged
    assert_no_secret(text, "500 log")


def stored_token(account: Model) -> str:
    return ProviderAccount.objects.values_list("encrypted_credentials", flat=True).get(
        pk=account.pk
    )


def test_rotate_keys_re_encrypts_every_account_so_the_old_key_can_go(
    accounts: dict[str, ProviderAccount],
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(CREDENTIALS_KEYS=[old]):
        for backend, account in accounts.items():
            account.set_credentials(CREDENTIALS[backend])
            account.save()
    before = {name: stored_token(a) for name, a in accounts.items()}

    with override_settings(CREDENTIALS_KEYS=[new, old]):
        output = run("rotate-keys")
    assert output.startswith("re-encrypted 3 account(s) under the newest key")
    assert_no_secret(output, "rotate-keys")

    with override_settings(CREDENTIALS_KEYS=[new]):
        for backend, account in accounts.items():
            account.refresh_from_db()
            assert stored_token(account) != before[backend]
            assert account.credentials == CREDENTIALS[backend]
    with override_settings(CREDENTIALS_KEYS=[old]), pytest.raises(CredentialsUnreadable):
        accounts["buzzbip"].refresh_from_db()
        accounts["buzzbip"].credentials  # noqa: B018 - decrypting is the test


def test_rotate_keys_names_accounts_no_key_can_read_and_exits_1(
    accounts: dict[str, ProviderAccount],
) -> None:
    unknown_key = override_settings(CREDENTIALS_KEYS=[Fernet.generate_key().decode()])
    with unknown_key, pytest.raises(CommandError, match="bulksmsrates, buzzbip, bwatmesaj"):
        call_command("provider", "rotate-keys", stdout=io.StringIO())
