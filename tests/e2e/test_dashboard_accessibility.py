"""Accessibility of every dashboard page, measured in Chromium on the rendered page.

What a screen reader or a low-vision user meets: text contrast against what is really
behind it (WCAG AA: 4.5:1, 3:1 for large text), a name for every form control, image
and button, one top heading, the page's language, and a focus ring that shows where the
keyboard is. Checked on the computed styles, so a colour change in the CSS is caught.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.segments import Segment
from contacts.models import Channel, Contact, Group
from messaging.inbound import Incoming, receive
from messaging.models import Message, ProviderAccount
from tests.conftest import phone
from tests.e2e.test_dashboard_walk import shot, sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# Runs in the page: every visible element with its own text, its colour against the
# first opaque background behind it, and the elements that have no accessible name.
AUDIT_JS = """
() => {
  const parse = (c) => { const m = c.match(/[\\d.]+/g) || []; return m.map(Number); };
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.95)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const visible = (el) => {
    const s = getComputedStyle(el), r = el.getBoundingClientRect();
    return s.visibility !== 'hidden' && s.display !== 'none' && r.width > 0 && r.height > 0
      && r.right > 0 && r.bottom > 0;
  };
  const lowContrast = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('svg') || !visible(el)) continue;
    const ownText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!ownText) continue;
    const s = getComputedStyle(el);
    const fg = parse(s.color).slice(0, 3), bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) lowContrast.push(
      `${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 30)}" ` +
      `${ratio.toFixed(2)}:1 < ${needed}`);
  }
  const name = (el) => (el.getAttribute('aria-label') || '').trim()
    || [...(el.getAttribute('aria-labelledby') || '').split(/\\s+/)]
         .map((id) => id && document.getElementById(id)?.textContent.trim()).join('')
    || [...(el.labels || [])].map((l) => l.textContent.trim()).join('')
    || (el.getAttribute('title') || '').trim();
  const unnamed = [], seen = new Map();
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden' || el.type === 'submit') continue;
    const n = name(el);
    if (!n) unnamed.push(`${el.tagName.toLowerCase()}#${el.id}[name=${el.name}]`);
    // Two fields both called "Reason" leave a screen reader user guessing which is which.
    else if (el.type !== 'radio' && el.type !== 'checkbox') {
      if (seen.has(n)) unnamed.push(`two fields named "${n}"`);
      seen.set(n, true);
    }
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    if (visible(el) && !(el.textContent.trim() || name(el))) {
      unnamed.push(el.outerHTML.slice(0, 60));
    }
  }
  for (const el of document.querySelectorAll('img, svg[role=img]')) {
    if (!(el.getAttribute('alt') || name(el) || el.querySelector('title'))) {
      unnamed.push(el.outerHTML.slice(0, 60));
    }
  }
  return {
    lowContrast, unnamed,
    lang: document.documentElement.lang,
    h1: document.querySelectorAll('h1').length,
    title: document.title,
  };
}
"""


def audit(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(AUDIT_JS)
    return result


def assert_accessible(page: Any, where: str) -> None:
    found = audit(page)
    assert found["lowContrast"] == [], f"{where}: text below WCAG AA contrast"
    assert found["unnamed"] == [], f"{where}: controls or images without a name"
    assert found["lang"], f"{where}: <html> has no lang"
    assert found["h1"] == 1, f"{where}: {found['h1']} top headings"
    assert found["title"].strip(), f"{where}: no <title>"


def assert_focus_is_visible(page: Any, where: str) -> None:
    """Tab through the first few controls: each shows an outline (or box shadow) while focused."""
    page.locator("body").click(position={"x": 1, "y": 1})
    for _ in range(4):
        page.keyboard.press("Tab")
        ring = page.evaluate(
            """() => { const s = getComputedStyle(document.activeElement);
                 return { tag: document.activeElement.tagName,
                          outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0,
                          shadow: s.boxShadow !== 'none' }; }"""
        )
        assert ring["tag"] != "BODY", f"{where}: Tab does not reach a control"
        assert ring["outline"] or ring["shadow"], f"{where}: no visible focus on {ring['tag']}"


def busy_campaign(account: ProviderAccount, group: Group, owner: User) -> Campaign:
    """A sending campaign with deliveries over time and failures with provider codes."""
    campaign = Campaign.objects.create(
        name="Winter <b>sale</b>",
        provider_account=account,
        body="Hi {{first_name}}",
        created_by=owner,
    )
    campaign.groups.add(group)
    started = timezone.now() - timedelta(minutes=30)
    Campaign.objects.filter(pk=campaign.pk).update(
        status=Campaign.Status.SENDING, started_at=started, submitted_by=owner
    )
    statuses = [Message.Status.DELIVERED] * 12 + [Message.Status.FAILED] * 3
    statuses += [Message.Status.PENDING] * 5
    for i, status in enumerate(statuses):
        Message.objects.create(
            campaign=campaign,
            provider_account=account,
            phone=phone(500 + i),
            body="Hi",
            client_ref=Message.new_client_ref(),
            status=status,
            delivered_at=started + timedelta(minutes=i) if status == "delivered" else None,
            error_code="E21" if status == "failed" else "",
            error_message="Unknown number" if status == "failed" else "",
        )
    return campaign


def test_every_dashboard_page_meets_contrast_names_headings_and_focus(
    page: Any,
    live_server: Any,
    make_contacts: Callable[..., list[Contact]],
    make_user: Callable[..., User],
    simulator: ProviderAccount,
    marketer: User,
) -> None:
    base = live_server.url
    group = Group.objects.create(name="Newsletter")
    contact = make_contacts(5, group)[0]
    campaign = busy_campaign(simulator, group, marketer)
    pending = Campaign.objects.create(
        name="Spring", provider_account=simulator, body="Spring is here", created_by=marketer
    )
    Campaign.objects.filter(pk=pending.pk).update(
        status=Campaign.Status.PENDING_APPROVAL,
        submitted_by=marketer,
        submitted_at=timezone.now(),
    )
    boss = make_user("boss", "Marketers", "Approvers")
    question = receive(simulator, Incoming(Channel.SMS, contact.phone, "Is it on Sunday?")).inbound
    stop = receive(simulator, Incoming(Channel.SMS, phone(90), "please stop texting me")).inbound
    leeds = Segment(name="Leeds", rules=["attr.city = Leeds", "attr.shoe = 42"])
    leeds.full_clean()
    leeds.save()

    page.goto(f"{base}/accounts/login/")
    assert_accessible(page, "sign-in")
    assert_focus_is_visible(page, "sign-in")

    sign_in(page, base, boss)
    pages = {
        "home": "/",
        "campaign": f"/campaigns/{campaign.pk}/",
        "builder": "/campaigns/new/",
        "approvals": "/approvals/",
        "contacts": "/contacts/",
        "contact-search": "/contacts/search/?q=Name",
        "contact": f"/contacts/{contact.pk}/",
        "group": f"/contacts/groups/{group.pk}/?q=Name",
        "contact-attributes": "/contacts/attributes/",
        "import": "/contacts/import/",
        "reports": "/reports/",
        "segments": "/segments/",
        "segment-new": "/segments/new/",
        "segment": f"/segments/{leeds.pk}/",  # a warning in its live count
        "segment-delete": f"/segments/{leeds.pk}/delete/",
        "inbox": "/inbox/",
        "inbox-conversation": f"/inbox/{question.pk}/",
        "inbox-possible-opt-out": f"/inbox/{stop.pk}/",
    }
    for name, path in pages.items():
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
        shot(page, f"a11y-{name}")
        assert_accessible(page, name)
        assert_focus_is_visible(page, name)
