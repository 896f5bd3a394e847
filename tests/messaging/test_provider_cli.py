"""`manage.py provider`: add, list, check and send-test against the built-in backends."""

import io

import pytest
from django.core.management import CommandError, call_command

import messaging
from audit.models import AuditEvent
from contacts.models import OptOut
from messaging.models import Message, ProviderAccount
from tests.conftest import phone
from tests.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-value-never-shown"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("provider", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# add


def test_add_creates_then_updates_the_same_account() -> None:
    args = ("add", "sim", "--backend", "simulator", "--sender", "Herald", "--rate-limit", "25")
    assert run(*args).strip() == "created sim (simulator)"
    assert run(*args).strip() == "updated sim (simulator)"
    account = ProviderAccount.objects.get()
    assert (account.name, account.backend, account.sender, account.rate_limit) == (
        "sim",
        "simulator",
        "Herald",
        25.0,
    )


def test_an_update_keeps_what_it_does_not_mention() -> None:
    run("add", "sim", "--backend", "simulator", "--sender", "Herald", "--set", "seed=a")
    run("add", "sim", "--backend", "simulator", "--set", "reject_rate=0.5")
    account = ProviderAccount.objects.get()
    assert account.sender == "Herald"
    assert account.options == {"seed": "a", "reject_rate": 0.5}


def test_option_values_are_parsed_as_json_when_they_parse() -> None:
    run(
        "add",
        "sim",
        "--backend",
        "simulator",
        "--set",
        "account_error=true",
        "--set",
        "reject_rate=0.25",
        "--set",
        "delivery_delay=3",
        "--set",
        "seed=spring run",
    )
    options = ProviderAccount.objects.get().options
    assert options == {
        "account_error": True,
        "reject_rate": 0.25,
        "delivery_delay": 3,
        "seed": "spring run",
    }
    assert type(options["delivery_delay"]) is int


def test_credentials_from_the_environment_are_stored_encrypted_and_named_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEM_API_SECRET", SECRET)
    output = run(
        "add",
        "mem",
        "--backend",
        "bulksmsrates",
        "--set",
        "api_key=key-1",
        "--set",
        "api_secret=env:MEM_API_SECRET",
    )
    assert output.strip() == "created mem (bulksmsrates); credentials set: api_key, api_secret"
    account = ProviderAccount.objects.get()
    assert account.credentials == {"api_key": "key-1", "api_secret": SECRET}
    assert account.options == {}
    assert SECRET not in account.encrypted_credentials


def test_setting_one_credential_keeps_the_others() -> None:
    bulk = ("add", "mem", "--backend", "bulksmsrates")
    run(*bulk, "--set", "api_key=key-1", "--set", "api_secret=old")
    output = run(*bulk, "--set", "api_secret=new")
    assert output.strip() == "updated mem (bulksmsrates); credentials set: api_secret"
    assert ProviderAccount.objects.get().credentials == {"api_key": "key-1", "api_secret": "new"}


def test_a_missing_environment_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERALD_NO_SUCH_VAR", raising=False)
    with pytest.raises(CommandError, match="environment variable HERALD_NO_SUCH_VAR is not set"):
        run("add", "sim", "--backend", "simulator", "--set", "seed=env:HERALD_NO_SUCH_VAR")
    assert not ProviderAccount.objects.exists()


def test_an_unknown_key_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(CommandError) as raised:
        run("add", "mem", "--backend", "bulksmsrates", "--set", "api_secrett=" + SECRET)
    message = str(raised.value)
    assert "api_secrett" in message
    assert "credential keys: api_key, api_secret, webhook_secret" in message
    assert SECRET not in message
    assert not ProviderAccount.objects.exists()


def test_an_unknown_key_lists_the_options_of_a_backend_without_credentials() -> None:
    with pytest.raises(CommandError, match="credential keys: none; option keys: delivery_delay"):
        run("add", "sim", "--backend", "simulator", "--set", "password=x")


def test_an_unknown_backend_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(CommandError, match="unknown backend 'smsly'; known: simulator, console"):
        run("add", "x", "--backend", "smsly")


def test_the_backend_of_an_existing_account_cannot_change() -> None:
    run("add", "sim", "--backend", "simulator")
    with pytest.raises(CommandError, match="Pick another name"):
        run("add", "sim", "--backend", "console")
    assert ProviderAccount.objects.get().backend == "simulator"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("add", "my account", "--backend", "simulator"), "not a valid name"),
        (("add", "sim", "--backend", "simulator", "--base-url", "not a url"), "not an http"),
        (("add", "sim", "--backend", "simulator", "--rate-limit", "0"), "above 0"),
        (("add", "sim", "--backend", "simulator", "--set", "seed"), "expected KEY=VALUE"),
        (("add", "sim", "--backend", "simulator", "--sender", "x" * 21), "sender"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_saved(args: tuple[str, ...], reason: str) -> None:
    with pytest.raises(CommandError, match=reason):
        run(*args)
    assert not ProviderAccount.objects.exists()


def test_a_sender_the_backend_refuses_is_an_error() -> None:
    with pytest.raises(CommandError, match="at most 11 letters and digits"):
        run("add", "bw", "--backend", "bwatmesaj", "--sender", "HeraldMarketing")
    assert run("add", "bw", "--backend", "bwatmesaj", "--sender", "Herald").startswith("created")


def test_a_base_url_can_be_set_and_cleared_back_to_the_provider_default() -> None:
    run("add", "sim", "--backend", "simulator", "--base-url", "https://gw.example.com/api")
    assert ProviderAccount.objects.get().base_url == "https://gw.example.com/api"
    run("add", "sim", "--backend", "simulator", "--base-url", "")
    assert ProviderAccount.objects.get().base_url == ""


# list


def test_list_says_so_when_there_are_no_accounts() -> None:
    assert run("list").strip() == "no provider accounts"


def test_list_shows_an_aligned_table_and_never_a_secret(simulator: ProviderAccount) -> None:
    simulator.set_credentials({"api_token": SECRET})
    simulator.save()
    ProviderAccount.objects.create(
        name="mem", backend="locmem", base_url="https://gw.example.com", is_active=False
    )
    lines = run("list").splitlines()
    assert SECRET not in "\n".join(lines)
    assert lines[0].split() == [
        "NAME",
        "BACKEND",
        "BASE_URL",
        "SENDER",
        "RATE/S",
        "ACTIVE",
        "CREDENTIALS",
    ]
    assert lines[1].split() == ["mem", "locmem", "https://gw.example.com", "-", "10", "no", "-"]
    assert lines[2].split("  ")[0] == "sim"
    assert "(provider default)" in lines[2]
    assert lines[2].endswith("api_token")
    assert lines[0].index("CREDENTIALS") == lines[2].index("api_token")


# check


def test_check_reports_ok(simulator: ProviderAccount) -> None:
    assert run("check", "sim").strip().startswith("sim: OK - ")


def test_check_reports_the_providers_refusal(simulator: ProviderAccount) -> None:
    simulator.options["account_error"] = "API access not enabled"
    simulator.save()
    with pytest.raises(CommandError, match="sim: ACCOUNT_REFUSED: API access not enabled"):
        run("check", "sim")


def test_check_of_an_unknown_account_is_an_error() -> None:
    with pytest.raises(CommandError, match="no provider account named 'ghost'"):
        run("check", "ghost")


# send-test


def test_send_test_sends_one_message_and_prints_its_id(locmem: ProviderAccount) -> None:
    output = run("send-test", "mem", "--to", "07911 200000", "--body", "Hello from Herald")
    message = Message.objects.get()
    assert message.status == Message.Status.SENT
    assert (message.phone, message.campaign, message.contact) == (phone(0), None, None)
    assert (message.encoding, message.segments) == ("gsm7", 1)
    assert messaging.outbox == [message]
    assert f"provider message id: {message.provider_message_id}" in output
    assert "status: sent" in output.splitlines()
    assert phone(0) not in output and "Hello from Herald" not in output


def test_send_test_is_marked_as_a_test_and_audited(locmem: ProviderAccount) -> None:
    run("send-test", "mem", "--to", "07911 200000", "--body", "Hello from Herald")
    message = Message.objects.get()
    assert message.is_test
    event = AuditEvent.objects.get(action=AuditEvent.Action.TEST_SEND)
    assert event.object_id == str(locmem.pk) and event.actor is None
    assert event.detail == {"message": message.pk, "to": "+44…00", "door": "provider send-test"}


def test_send_test_on_whatsapp_keeps_the_template_and_its_parameters(
    locmem: ProviderAccount,
) -> None:
    run(
        "send-test",
        "mem",
        "--to",
        phone(1),
        "--body",
        "Your order shipped",
        "--channel",
        "whatsapp",
        "--template",
        "order_update",
        "--param",
        "Ada",
        "--param",
        "A-17",
    )
    message = Message.objects.get()
    assert (message.channel, message.template_id) == ("whatsapp", "order_update")
    assert message.template_params == ["Ada", "A-17"]
    assert message.status == Message.Status.SENT


def test_send_test_refused_by_the_provider_exits_1_and_the_row_is_failed(
    simulator: ProviderAccount,
) -> None:
    simulator.options["reject_rate"] = 1
    simulator.save()
    out = io.StringIO()
    with pytest.raises(CommandError, match="INVALID_PHONE_NUMBER"):
        call_command("provider", "send-test", "sim", "--to", phone(2), "--body", "hi", stdout=out)
    assert Message.objects.get().status == Message.Status.FAILED
    assert "status: failed" in out.getvalue()
    assert "error: INVALID_PHONE_NUMBER: number refused (simulated)" in out.getvalue()


def test_send_test_on_a_refused_account_exits_1_with_the_reason(
    simulator: ProviderAccount,
) -> None:
    simulator.options["account_error"] = "insufficient balance"
    simulator.save()
    with pytest.raises(CommandError, match="sim: ACCOUNT_REFUSED: insufficient balance"):
        run("send-test", "sim", "--to", phone(3), "--body", "hi")
    assert Message.objects.get().provider_message_id == ""


def test_send_test_to_an_opted_out_number_is_skipped(locmem: ProviderAccount) -> None:
    OptOut.objects.create(phone=phone(4), channel="sms")
    output = run("send-test", "mem", "--to", phone(4), "--body", "hi")
    assert "status: skipped" in output
    assert "skipped: opted out" in output
    assert messaging.outbox == []
    assert Message.objects.get().skip_reason == Message.SkipReason.OPTED_OUT


def test_send_test_to_an_invalid_number_is_an_error(locmem: ProviderAccount) -> None:
    with pytest.raises(CommandError, match="Enter a valid phone number"):
        run("send-test", "mem", "--to", "+44 7700 900123", "--body", "hi")
    assert not Message.objects.exists()


def test_send_test_on_whatsapp_needs_a_template(locmem: ProviderAccount) -> None:
    with pytest.raises(CommandError, match="needs --template"):
        run("send-test", "mem", "--to", phone(5), "--body", "hi", "--channel", "whatsapp")
    assert not Message.objects.exists()


def test_send_test_through_an_unknown_account_is_an_error() -> None:
    with pytest.raises(CommandError, match="no provider account named 'ghost'"):
        run("send-test", "ghost", "--to", phone(6), "--body", "hi")


# Against the fake gateway, over HTTP


@pytest.fixture
def bulk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULK_KEY", "bsms_test_key")
    monkeypatch.setenv("BULK_SECRET", "sk_test_secret")


@pytest.mark.usefixtures("bulk_env")
def test_add_check_and_send_test_through_bulksmsrates(gateway: FakeGateway) -> None:
    run(
        "add", "bulk", "--backend", "bulksmsrates", "--base-url", gateway.url,
        "--sender", "Herald", "--rate-limit", "50",
        "--set", "api_key=env:BULK_KEY", "--set", "api_secret=env:BULK_SECRET",
    )  # fmt: skip
    assert run("check", "bulk").strip() == "bulk: OK - balance 10000.00 GBP available"
    output = run("send-test", "bulk", "--to", phone(3), "--body", "Hello from Herald")
    (sent,) = gateway.messages.values()
    assert f"provider message id: {sent.id}" in output and "status: sent" in output
    assert (sent.to, sent.body, sent.sender) == (phone(3), "Hello from Herald", "Herald")
    assert "sk_test_secret" not in run("list")


@pytest.mark.usefixtures("bulk_env")
def test_check_prints_the_providers_refusal(gateway: FakeGateway) -> None:
    base = ("add", "bulk", "--backend", "bulksmsrates", "--base-url", gateway.url)
    run(*base, "--set", "api_key=env:BULK_KEY", "--set", "api_secret=wrong")
    with pytest.raises(CommandError, match="bulk: UNAUTHORIZED: Missing, invalid, or expired"):
        run("check", "bulk")


def test_check_buzzbip_without_api_access_says_what_to_do(gateway: FakeGateway) -> None:
    gateway.buzzbip_no_api_access.add("herald")
    base = ("add", "bb", "--backend", "buzzbip", "--base-url", gateway.url)
    run(*base, "--set", "username=herald", "--set", "password=secret")
    with pytest.raises(CommandError, match=r"User\.hasApiAccess"):
        run("check", "bb")
    gateway.buzzbip_no_api_access.clear()
    assert run("check", "bb").strip() == "bb: OK - logged in as herald; API access enabled"


def test_send_test_whatsapp_through_buzzbip(gateway: FakeGateway) -> None:
    base = ("add", "bb", "--backend", "buzzbip", "--base-url", gateway.url)
    run(*base, "--set", "username=herald", "--set", "password=secret")
    output = run(
        "send-test", "bb", "--to", phone(4), "--body", "-", "--channel", "whatsapp",
        "--template", "welcome_1", "--param", "Ada",
    )  # fmt: skip
    (sent,) = gateway.messages.values()
    assert "status: sent" in output and f"provider message id: {sent.id}" in output
    assert (sent.to, sent.template, sent.parameters) == (phone(4), "welcome_1", ["Ada"])


def test_check_and_send_test_through_bwatmesaj(gateway: FakeGateway) -> None:
    base = ("add", "bw", "--backend", "bwatmesaj", "--base-url", gateway.url, "--sender", "Herald")
    run(*base, "--set", "api_token=13|testtoken")
    assert run("check", "bw").strip() == "bw: OK - api token accepted"
    output = run("send-test", "bw", "--to", phone(5), "--body", "Hi")
    (sent,) = gateway.messages.values()
    assert f"provider message id: {sent.id}" in output
    gateway.bwat_tokens.clear()
    with pytest.raises(CommandError, match="Unauthenticated"):
        run("check", "bw")
