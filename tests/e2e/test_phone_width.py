"""Every dashboard page at laptop (1280 px) and phone (375 px) width: the page itself never
scrolls sideways. Wide tables scroll inside their own box or turn into cards.

The pages are taken from dashboard/urls.py, so a page added there is measured too (or the
test says it has no address for it). The data fills every table, with long names and
unbroken text where a page could be pushed wide. Screenshots go to /tmp/herald-screens/.
"""

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import URLPattern
from django.utils import timezone

from api.models import WebhookDelivery, WebhookSubscription, interest
from api.outgoing.events import record
from campaigns.models import Campaign
from campaigns.segments import Segment
from contacts import jobs
from contacts.models import Channel, Contact, Group, ImportJob, OptOut, Tag
from dashboard.urls import urlpatterns
from messaging.inbound import Incoming, receive
from messaging.models import InboundMessage, Message, ProviderAccount
from tests.conftest import phone
from tests.contacts.conftest import uk
from tests.e2e.test_dashboard_walk import sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SCREENS = Path("/tmp/herald-screens")
WIDTHS = (1280, 375)
S = Campaign.Status

#: Dashboard URLs that are no page to look at: JSON polled by scripts, CSV downloads, and
#: POST-only actions (each answers a GET with 405 or sends it to its page).
NOT_PAGES = {
    "campaigns/preview/",
    "segments/count/",
    "campaigns/<int:pk>/progress/",
    "campaigns/<int:pk>/export.csv",
    "contacts/imports/<int:pk>/progress/",
    "contacts/imports/<int:pk>/errors.csv",
}

#: Extra addresses of a page in a state worth measuring: filtered, searched, paged.
WITH_QUERIES = {
    "campaigns-filtered": "/campaigns/?status=draft&q=Spring",
    "campaigns-page-2": "/campaigns/?page=2",
    "contact-search": "/contacts/search/?q=Name1",
    "reports-range": "/reports/?from=2020-01-01&to=2030-12-31",
    "inbox-filtered": "/inbox/?unhandled=1&possible=1",
}

#: Runs in the page: the elements sticking out past the right edge of the window that no
#: scrolling box of their own contains, to say what pushes the page wide.
OVERFLOW_JS = """
() => {
  const width = window.innerWidth, culprits = [];
  const contained = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const x = getComputedStyle(p).overflowX;
      if (['auto', 'scroll', 'hidden', 'clip'].includes(x)) {
        return p.getBoundingClientRect().right <= width + 1;
      }
    }
    return false;
  };
  const sticksOut = (el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.right > width + 1 && !contained(el);
  };
  for (const el of document.body.querySelectorAll('*')) {
    // The innermost: an element that sticks out while none of its children does.
    if (sticksOut(el) && ![...el.children].some(sticksOut)) {
      const box = el.getBoundingClientRect();
      const classes = typeof el.className === 'string' && el.className.trim()
        ? '.' + el.className.trim().split(/\\s+/).join('.') : '';
      culprits.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${classes}`
        + ` "${el.textContent.trim().slice(0, 25)}" (right edge ${Math.round(box.right)} px)`);
    }
  }
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: width,
    culprits: culprits.slice(0, 8),
  };
}
"""

LONG = "Supercalifragilisticexpialidocious-winter-clearance-everything-must-go"


@pytest.fixture(autouse=True)
def _fresh_interest() -> Iterator[None]:
    """Who wants which webhook events is remembered for a few seconds: not past this test."""
    interest.forget()
    yield
    interest.forget()


def filled_world(account: ProviderAccount, owner: User) -> dict[str, Any]:
    """Enough of everything that each page's tables are full, with long words in them."""
    group = Group.objects.create(name=f"Newsletter subscribers {LONG}")
    vip = Tag.objects.create(name="vip")
    contacts = []
    for i in range(40):
        contact = Contact.objects.create(
            phone=phone(i),
            first_name=f"Name{i}",
            last_name="Featherstonehaugh-Cholmondeley",
            email=f"name{i}.featherstonehaugh-cholmondeley@a-very-long-domain.example.com",
            attributes={
                "city": "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
                "plan": ["gold", "silver", "bronze"][i % 3],
                "note": LONG,
            },
        )
        contact.groups.add(group)
        if i % 4 == 0:
            contact.tags.add(vip)
        contacts.append(contact)
    OptOut.objects.create(phone=contacts[1].phone, note=LONG)
    OptOut.objects.create(phone=contacts[1].phone, channel="whatsapp", source="reply")
    busy = sending_campaign(account, group, owner, contacts)
    draft = Campaign.objects.create(
        name="Spring draft",
        provider_account=account,
        created_by=owner,
        body=f"Hi {{{{first_name}}}}, see https://example.com/{LONG}/{LONG} {{{{city|there}}}}",
    )
    draft.groups.add(group)
    segment = Segment(
        name=f"Gold customers {LONG}",
        rules=[
            f"attr.note = {LONG}",
            "attr.city in Leeds,York,Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
        ],
    )
    segment.full_clean()
    segment.save()
    draft.segments.add(segment)
    for i in range(30):  # more than a page of the campaign list
        other = Campaign.objects.create(
            name=f"Campaign {i} {LONG}", provider_account=account, body="Hello", created_by=owner
        )
        other.groups.add(group)
        status = [S.DRAFT, S.PENDING_APPROVAL, S.COMPLETED, S.CANCELLED, S.SCHEDULED][i % 5]
        Campaign.objects.filter(pk=other.pk).update(
            status=status, submitted_by=owner, submitted_at=timezone.now()
        )
    webhook, _secret = WebhookSubscription.objects.create_with_secret(
        f"https://crm.a-very-long-domain.example.com/hooks/{LONG}", ["opt_out"], f"CRM {LONG}"
    )
    interest.forget()
    record("opt_out", [{"phone": contacts[1].phone, "note": LONG}])
    return {
        "webhook": webhook,
        "delivery": WebhookDelivery.objects.get(),
        "reply": replies(account, contacts),
        "campaign": busy,
        "draft": draft,
        "contact": contacts[0],
        "group": group,
        "job": checked_import(owner, group),
        "segment": segment,
    }


def replies(account: ProviderAccount, contacts: list[Contact]) -> InboundMessage:
    """Replies in a long conversation and from unknown numbers, with unbroken words."""
    first = receive(account, Incoming(Channel.SMS, contacts[0].phone, f"Is it {LONG}?")).inbound
    for i, text in enumerate(["STOP", "please stop texting me", "HELP", LONG * 3]):
        receive(account, Incoming(Channel.SMS, phone(200 + i), text))
        receive(account, Incoming(Channel.SMS, contacts[0].phone, f"And {text}"))
    return first


def sending_campaign(
    account: ProviderAccount, group: Group, owner: User, contacts: list[Contact]
) -> Campaign:
    """Sending, with deliveries over time, failures with long provider errors, skips."""
    campaign = Campaign.objects.create(
        name=f"Winter sale {LONG}",
        provider_account=account,
        body="Hi {{first_name}}",
        created_by=owner,
    )
    campaign.groups.add(group)
    started = timezone.now() - timedelta(hours=3)
    Campaign.objects.filter(pk=campaign.pk).update(
        status=S.SENDING, started_at=started, submitted_by=owner
    )
    statuses = [Message.Status.DELIVERED] * 20 + [Message.Status.FAILED] * 8
    statuses += [Message.Status.PENDING] * 8 + [Message.Status.SKIPPED] * 4
    for i, (status, contact) in enumerate(zip(statuses, contacts, strict=False)):
        Message.objects.create(
            campaign=campaign,
            provider_account=account,
            contact=contact,
            phone=contact.phone,
            body=f"Hi {contact.first_name}",
            client_ref=Message.new_client_ref(),
            status=status,
            delivered_at=started + timedelta(minutes=5 * i) if status == "delivered" else None,
            error_code="E21" if status == "failed" else "",
            error_message=f"Unknown subscriber {LONG}" if status == "failed" else "",
            skip_reason=Message.SkipReason.OPTED_OUT if status == "skipped" else "",
        )
    return campaign


def checked_import(owner: User, group: Group) -> ImportJob:
    """An uploaded contact file, checked and waiting to be confirmed, with rejected rows."""
    rows = ["phone,first_name,last_name,email,loyalty_tier"]
    rows += [f"{uk(i)},Ann{i},Smith,ann{i}@example.com,{LONG}" for i in range(12)]
    rows += ["12345,Too,Short,,", "not a number,Bad,Row,,", f"{uk(0)},Dup,Row,,"]
    job = ImportJob.objects.create(
        original_name=f"{LONG}-contacts-export.csv", region="GB", created_by=owner
    )
    job.file.save("people.csv", ContentFile("\r\n".join(rows).encode()))
    job.groups.add(group)
    return jobs.check(job)


def address(pattern: str, world: dict[str, Any]) -> str:
    """The page of `pattern` about the objects of `world`."""
    url = "/" + pattern
    if "<int:pk>" in url:
        if url.startswith("/outgoing-webhooks/deliveries/"):
            pk = world["delivery"].pk
        elif url.startswith("/outgoing-webhooks/"):
            pk = world["webhook"].pk
        elif url.startswith("/segments/"):
            pk = world["segment"].pk
        elif url.startswith("/contacts/imports/"):
            pk = world["job"].pk
        elif url.startswith("/contacts/groups/"):
            pk = world["group"].pk
        elif url.startswith("/contacts/"):
            pk = world["contact"].pk
        elif url.startswith("/inbox/"):
            pk = world["reply"].pk
        elif re.search(r"/(edit|test|delete|duplicate)/$", url):
            pk = world["draft"].pk
        else:
            pk = world["campaign"].pk
        url = url.replace("<int:pk>", str(pk))
    return url.replace("<str:action>", "pause").replace("<str:decision>", "resend")


def pages_to_measure(client: Client, world: dict[str, Any]) -> dict[str, str]:
    """Every dashboard URL that answers a GET with an HTML page, by name, and the extras."""
    pages, refused = {}, {}
    for pattern in urlpatterns:
        assert isinstance(pattern, URLPattern)
        route = str(pattern.pattern)
        if route in NOT_PAGES:
            continue
        url = address(route, world)
        response = client.get(url)
        if response.status_code == 405:
            continue  # an action: its form is on a page measured here
        if response.status_code != 200 or "text/html" not in response["Content-Type"]:
            refused[route] = f"{url} answered {response.status_code}"
            continue
        pages[pattern.name or "home"] = url
    assert refused == {}, "pages the test could not reach (give it an address or data)"
    return pages | WITH_QUERIES


def measure(tab: Any, name: str, url: str, width: int) -> list[str]:
    tab.set_viewport_size({"width": width, "height": 800})
    tab.goto(url)
    tab.wait_for_load_state("load")
    tab.wait_for_timeout(300)  # live parts draw their first figures
    SCREENS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENS / f"{name}-{width}.png"), full_page=True)
    tab.screenshot(path=str(SCREENS / f"{name}-{width}-top.png"))  # the first screenful
    found = tab.evaluate(OVERFLOW_JS)
    if found["scrollWidth"] <= found["innerWidth"]:
        return []
    return [f"{name} at {width} px: page is {found['scrollWidth']} px wide: {found['culprits']}"]


def test_every_dashboard_page_fits_a_phone_and_a_laptop_without_sideways_scrolling(
    page: Any,
    live_server: Any,
    make_user: Callable[..., User],
    simulator: ProviderAccount,
) -> None:
    root = make_user("root")
    root.is_superuser = True  # sees every panel, every action
    root.save()
    world = filled_world(simulator, root)
    client = Client()
    client.force_login(root)
    pages = pages_to_measure(client, world)
    assert {"home", "campaigns", "campaign", "contacts", "reports"} <= set(pages)

    base = live_server.url
    sign_in(page, base, root)
    too_wide = [
        problem
        for width in WIDTHS
        for name, url in pages.items()
        for problem in measure(page, name, base + url, width)
    ]
    (SCREENS / "too-wide.txt").write_text("\n".join(too_wide) + "\n")
    assert too_wide == [], f"see {SCREENS / 'too-wide.txt'}"


def test_the_sign_in_and_error_pages_fit_a_phone(page: Any, live_server: Any) -> None:
    too_wide = measure(page, "sign-in", f"{live_server.url}/accounts/login/", 375)
    too_wide += measure(page, "not-found", f"{live_server.url}/no/such/page/", 375)
    assert too_wide == []
