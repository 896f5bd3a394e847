"""Contact fields and campaign text holding HTML or JavaScript are shown, never run.

Server side: every page that shows such data carries the escaped form and never the raw one.
In Chromium: the same pages load with the payloads and no script runs, no element is injected.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils.html import escape
from playwright.sync_api import expect

from campaigns.models import Campaign
from contacts.models import Contact, Group, ImportJob, Tag
from messaging.models import Message, ProviderAccount

SCRIPT = "<script>window.__xss=1</script>"
IMG = '"><img src=x onerror=window.__xss=1>'
JS_LINK = "javascript:window.__xss=1"
RAW = (SCRIPT, "<img src=x onerror")
STATIC = Path(__file__).resolve().parents[2] / "static" / "herald"


@pytest.fixture
def hostile(db: Any, simulator: ProviderAccount, marketer: User, approver: User) -> dict[str, Any]:
    group = Group.objects.create(name=IMG)
    tag = Tag.objects.create(name=SCRIPT[:50])
    for i, (first, last) in enumerate([(SCRIPT, IMG), (IMG, JS_LINK)]):
        contact = Contact.objects.create(
            phone=f"+44791120000{i}",
            first_name=first,
            last_name=last,
            email=f"x{i}@example.com",
            attributes={"city": IMG, "site": JS_LINK},
        )
        contact.groups.add(group)
        contact.tags.add(tag)
    draft = Campaign.objects.create(
        name=SCRIPT,
        provider_account=simulator,
        body="Hi {{first_name}} " + IMG,
        created_by=marketer,
    )
    draft.groups.add(group)
    pending = Campaign.objects.create(
        name=IMG, provider_account=simulator, body="Hi {{first_name}}", created_by=marketer
    )
    pending.groups.add(group)
    pending.submit(by=marketer)
    Message.objects.create(
        campaign=draft,
        provider_account=simulator,
        phone="+447911200000",
        body="Hi " + SCRIPT,
        client_ref=Message.new_client_ref(),
        status=Message.Status.FAILED,
        error_code=SCRIPT[:50],
        error_message=IMG,
    )
    job = ImportJob.objects.create(
        original_name=SCRIPT + ".csv",
        region="GB",
        created_by=marketer,
        status=ImportJob.Status.FAILED,
        failure_reason=IMG,
    )
    boss = User.objects.create_superuser("boss", password="pw-boss")
    return {"draft": draft, "pending": pending, "job": job, "group": group, "boss": boss}


def pages(world: dict[str, Any]) -> list[str]:
    draft, pending, job, group = world["draft"], world["pending"], world["job"], world["group"]
    return [
        "/",
        f"/campaigns/{draft.pk}/",
        f"/campaigns/{pending.pk}/",
        f"/campaigns/{draft.pk}/edit/",
        f"/campaigns/{draft.pk}/test/",
        f"/campaigns/{draft.pk}/action/cancel/",
        "/approvals/",
        "/reports/",
        "/contacts/",
        "/admin/contacts/contact/",
        f"/admin/contacts/contact/{Contact.objects.first().pk}/change/",  # type: ignore[union-attr]
        "/admin/contacts/group/",
        f"/admin/contacts/group/{group.pk}/change/",
        "/admin/contacts/tag/",
        "/admin/contacts/importjob/",
        f"/admin/contacts/importjob/{job.pk}/change/",
        "/admin/campaigns/campaign/",
        f"/admin/campaigns/campaign/{draft.pk}/change/",
        f"/admin/campaigns/campaign/{pending.pk}/change/",
        "/admin/campaigns/pendingapproval/",
        "/admin/campaigns/campaigntransition/",
        "/admin/messaging/message/",
        f"/admin/messaging/message/{Message.objects.get().pk}/change/",
        "/admin/audit/auditevent/",
    ]


def shows_escaped(html: str) -> bool:
    """The page shows a payload as text: some escaped form of one is in it."""
    forms = [str(escape(p)) for p in (SCRIPT, IMG, SCRIPT[:50])]
    forms += ["&lt;script&gt;window.__xss=1", "&lt;img src=x onerror=window.__xss=1&gt;"]
    return any(form in html for form in forms)


def test_every_page_showing_the_data_escapes_it(client: Client, hostile: dict[str, Any]) -> None:
    client.force_login(hostile["boss"])
    for url in pages(hostile):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for raw in RAW:
            assert raw not in html, f"{url} carries {raw!r} unescaped"
        if url not in ("/reports/", "/admin/audit/auditevent/"):
            assert shows_escaped(html), f"{url} shows none of the data: the test proves nothing"


def test_the_builder_preview_json_is_data_and_the_script_puts_it_in_as_text(
    client: Client, hostile: dict[str, Any], simulator: ProviderAccount
) -> None:
    client.force_login(hostile["boss"])
    response = client.post(
        "/campaigns/preview/",
        {
            "body": "Hi {{first_name}} " + IMG,
            "groups": [hostile["group"].pk],
            "provider_account": simulator.pk,
            "channel": "sms",
        },
    )
    assert response["Content-Type"] == "application/json"
    # The payload comes back as data (the page's script puts it in as text, checked below).
    assert IMG in json.dumps(response.json()["samples"])
    for script in STATIC.glob("*.js"):
        code = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in code, f"{script.name} uses {sink}"


def test_a_javascript_next_address_is_not_followed_after_sign_in(
    client: Client, hostile: dict[str, Any]
) -> None:
    response = client.post(
        "/accounts/login/?next=" + JS_LINK,
        {"username": "boss", "password": "pw-boss", "next": JS_LINK},
    )
    assert response.status_code == 302
    assert not response["Location"].lower().startswith("javascript")


INJECTED = """() => ({
  flag: typeof window.__xss,
  images: document.querySelectorAll('img[src="x"]').length,
  scripts: [...document.scripts].filter(s => s.textContent.includes('__xss')).length,
  handlers: document.querySelectorAll('[onerror], [onload], a[href^="javascript"]').length,
})"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_no_payload_runs_in_chromium(page: Any, live_server: Any, hostile: dict[str, Any]) -> None:
    base = live_server.url
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-boss")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Sign out")
    clean = {"flag": "undefined", "images": 0, "scripts": 0, "handlers": 0}
    for url in pages(hostile):
        page.goto(base + url)
        page.wait_for_load_state("load")
        assert page.evaluate(INJECTED) == clean, url
    # The builder's live preview puts the rendered samples in as the user types.
    page.goto(f"{base}/campaigns/{hostile['draft'].pk}/edit/")
    page.fill("textarea[name=body]", "Hi {{first_name}} {{last_name}} " + IMG)
    expect(page.locator("body")).to_contain_text("onerror=window.__xss=1", timeout=10_000)
    assert page.evaluate(INJECTED) == clean
    assert re.search(r"window\.__xss=1", page.content())  # shown, as text
