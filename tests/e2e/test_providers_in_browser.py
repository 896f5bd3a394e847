"""An administrator sets up a gateway account in the admin, in Chromium, and checks it."""

import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from messaging.models import ProviderAccount
from tests.fakegateway import FakeGateway

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SECRET = "sk_test_secret"


def test_admin_adds_an_account_its_secrets_never_come_back_and_the_check_says_ok(
    page: Any, live_server: Any, gateway: FakeGateway
) -> None:
    User.objects.create_superuser("root", password="pw-root")
    base = live_server.url
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pw-root")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")

    page.goto(f"{base}/admin/messaging/provideraccount/add/")
    page.fill("#id_name", "bulk")
    page.select_option("#id_backend", "bulksmsrates")
    page.fill("#id_base_url", gateway.url)
    page.fill("#id_sender", "Herald")
    page.fill("#id_rate_limit", "50")
    # A typo in a credential name is refused, and what was typed is not shown back.
    page.fill("#id_new_credentials", json.dumps({"api_key": "bsms_test_key", "apisecret": SECRET}))
    page.click("input[name=_continue]")
    assert "Unknown credential apisecret" in page.inner_text(".errorlist")
    assert SECRET not in page.content()
    assert not ProviderAccount.objects.exists()

    page.fill("#id_new_credentials", json.dumps({"api_key": "bsms_test_key", "api_secret": SECRET}))
    page.click("input[name=_continue]")
    page.wait_for_selector("ul.messagelist")
    assert SECRET not in page.content() and "bsms_test_key" not in page.content()
    assert ProviderAccount.objects.get().credentials["api_secret"] == SECRET

    page.goto(f"{base}/admin/messaging/provideraccount/")
    page.check("input.action-select")
    page.select_option("select[name=action]", "check_connection")
    page.click("button[name=index]")
    message = page.inner_text("ul.messagelist")
    assert "OK - balance 10000.00 GBP available" in message
    assert gateway.count("bulksmsrates", "/v1/billing/balance") == 1

    gateway.bulk_keys["bsms_test_key"] = "rotated"
    page.check("input.action-select")
    page.select_option("select[name=action]", "check_connection")
    page.click("button[name=index]")
    assert "UNAUTHORIZED" in page.inner_text("ul.messagelist .error")
