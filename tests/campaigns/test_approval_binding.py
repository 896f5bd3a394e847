"""An approval binds exactly what is sent: the reproductions of the security review.

A scheduled, approved campaign whose message template is edited, or whose recipients'
attributes change by a re-import, or whose audience grows too far, sends nothing the
approver did not see: it is held for approval again, with the reason and samples.
"""

from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

import messaging
from audit.models import AuditEvent
from campaigns.models import Campaign, MessageTemplate
from campaigns.sending import run_campaign
from contacts.models import Contact, Group, OptOut
from messaging.models import ProviderAccount
from tests.conftest import phone, reschedule

S = Campaign.Status

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def approved_for_later(campaign: Campaign, marketer: User, approver: User) -> Campaign:
    """Submitted and approved for in an hour, then the clock moves on to it: due, not run yet."""
    campaign.scheduled_at = timezone.now() + timedelta(hours=1)
    campaign.save()
    campaign.submit(by=marketer)
    campaign.approve(by=approver)
    reschedule(campaign, timezone.now())
    assert campaign.status == S.SCHEDULED
    return campaign


def edit_template(campaign: Campaign, **changes: object) -> None:
    """Change the campaign's message template behind its back, as its admin page would."""
    assert campaign.template_id is not None
    MessageTemplate.objects.filter(pk=campaign.template_id).update(**changes)


def comes_due(campaign: Campaign) -> Campaign:
    """The engine's next run."""
    campaign = Campaign.objects.get(pk=campaign.pk)
    run_campaign(campaign)
    campaign.refresh_from_db()
    return campaign


@pytest.fixture
def templated(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
) -> Campaign:
    group = Group.objects.create(name="G")
    make_contacts(4, group)
    template = MessageTemplate.objects.create(name="Spring", body="Hi {{first_name}}, sale today")
    campaign = make_campaign(locmem, group, body="")
    campaign.template = template
    campaign.save()
    return campaign


def test_editing_the_template_of_an_approved_campaign_sends_nothing_and_holds_it(
    templated: Campaign, marketer: User, approver: User
) -> None:
    campaign = approved_for_later(templated, marketer, approver)
    edit_template(campaign, body="Hi {{first_name}}, your parcel is held: http://phish.example/pay")

    campaign = comes_due(campaign)

    assert messaging.outbox == []
    assert campaign.messages.count() == 0
    assert campaign.status == S.PENDING_APPROVAL
    assert "changed after it was approved" in campaign.held_reason
    assert campaign.approved_by is None
    changes = campaign.held_changes
    assert changes["old_samples"][0]["body"] == "Hi Name0, sale today"
    assert "phish.example" in changes["new_samples"][0]["body"]
    # The approver now sees the new text, with figures worked out again.
    assert "phish.example" in campaign.estimate["samples"][0]["body"]
    hold = AuditEvent.objects.get(
        action=AuditEvent.Action.CAMPAIGN_TRANSITION, detail__action="hold"
    )
    assert hold.detail["to"] == S.PENDING_APPROVAL and "changed" in hold.detail["reason"]
    assert [t.action for t in campaign.transitions.all()][-1] == "hold"


def test_a_held_campaign_sends_the_new_text_once_approved_again(
    templated: Campaign, marketer: User, approver: User
) -> None:
    campaign = approved_for_later(templated, marketer, approver)
    edit_template(campaign, body="Hi {{first_name}}, new text")
    campaign = comes_due(campaign)
    assert campaign.status == S.PENDING_APPROVAL

    campaign.approve(by=approver)  # wakes the engine: in sync mode it sends at once

    campaign.refresh_from_db()
    assert campaign.status == S.COMPLETED
    assert sorted(m.body for m in messaging.outbox) == [f"Hi Name{i}, new text" for i in range(4)]


def test_a_template_edited_between_submit_and_approval_is_not_approved_unseen(
    templated: Campaign, marketer: User, approver: User
) -> None:
    templated.submit(by=marketer)
    edit_template(templated, body="Hi {{first_name}}, other")

    with pytest.raises(ValidationError, match="changed after it was submitted"):
        templated.approve(by=approver)

    templated.refresh_from_db()
    assert templated.status == S.PENDING_APPROVAL
    assert templated.estimate["samples"][0]["body"] == "Hi Name0, other"
    templated.approve(by=approver)  # what is shown now is what goes
    assert sorted(m.body for m in messaging.outbox) == [f"Hi Name{i}, other" for i in range(4)]


def test_whatsapp_parameters_are_part_of_what_is_approved(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    marketer: User,
    approver: User,
) -> None:
    account = ProviderAccount.objects.create(name="wa", backend=ProviderAccount.Backend.LOCMEM)
    group = Group.objects.create(name="G")
    make_contacts(2, group)
    template = MessageTemplate.objects.create(
        name="wa",
        channel="whatsapp",
        body="Hello {{first_name}}",
        whatsapp_template_id="welcome_1",
        whatsapp_parameters=["first_name"],
    )
    campaign = make_campaign(account, group, body="")
    campaign.channel, campaign.template = "whatsapp", template
    campaign.save()
    campaign = approved_for_later(campaign, marketer, approver)
    MessageTemplate.objects.filter(pk=template.pk).update(whatsapp_parameters=["phone"])

    campaign = comes_due(campaign)

    assert messaging.outbox == [] and campaign.status == S.PENDING_APPROVAL


def test_reimporting_changed_attributes_after_approval_sends_nothing_unseen(
    locmem: ProviderAccount,
    make_campaign: Callable[..., Campaign],
    marketer: User,
    approver: User,
    tmp_path: Path,
) -> None:
    first = tmp_path / "first.csv"
    first.write_text(
        "phone,first_name,city\n" + "".join(f"{phone(i)},Name{i},Leeds\n" for i in range(3))
    )
    call_command("import_contacts", str(first), "--group", "Yorkshire", stdout=StringIO())
    campaign = make_campaign(
        locmem, Group.objects.get(name="Yorkshire"), body="{{first_name}}: sale in {{city}}"
    )
    campaign = approved_for_later(campaign, marketer, approver)
    again = tmp_path / "again.csv"
    again.write_text("phone,first_name,city\n" + f"{phone(1)},Name1,tinyurl.example/x\n")
    call_command("import_contacts", str(again), "--group", "Yorkshire", stdout=StringIO())

    campaign = comes_due(campaign)

    assert messaging.outbox == []
    assert campaign.messages.count() == 0
    assert campaign.status == S.PENDING_APPROVAL
    assert "differ from the approved ones" in campaign.held_reason
    assert campaign.held_changes["new_samples"] == [
        {
            "contact": f"contact {Contact.objects.get(phone=phone(1)).pk}",
            "body": "Name1: sale in tinyurl.example/x",
        }
    ]


def test_an_unchanged_reimport_sends_as_approved(
    locmem: ProviderAccount,
    make_campaign: Callable[..., Campaign],
    marketer: User,
    approver: User,
    tmp_path: Path,
) -> None:
    source = tmp_path / "contacts.csv"
    source.write_text(
        "phone,first_name,city\n" + "".join(f"{phone(i)},N{i},Leeds\n" for i in range(3))
    )
    call_command("import_contacts", str(source), "--group", "Y", stdout=StringIO())
    campaign = make_campaign(locmem, Group.objects.get(name="Y"), body="{{first_name}} in {{city}}")
    campaign = approved_for_later(campaign, marketer, approver)
    call_command("import_contacts", str(source), "--group", "Y", stdout=StringIO())

    campaign = comes_due(campaign)

    assert campaign.status == S.COMPLETED
    assert sorted(m.body for m in messaging.outbox) == [f"N{i} in Leeds" for i in range(3)]


def test_an_audience_grown_beyond_the_setting_is_held_saying_by_how_much(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
    settings: object,
) -> None:
    group = Group.objects.create(name="G")
    make_contacts(10, group)
    campaign = approved_for_later(
        make_campaign(locmem, group, body="Sale today"), marketer, approver
    )
    make_contacts(2, group, start=10)  # 20% more than approved; 10% (1) is allowed

    campaign = comes_due(campaign)

    assert messaging.outbox == []
    assert campaign.status == S.PENDING_APPROVAL
    assert "12 recipients instead of 10 (+2, +20%; up to +1" in campaign.held_reason


def test_growth_within_the_setting_is_sent(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="G")
    make_contacts(10, group)
    campaign = approved_for_later(
        make_campaign(locmem, group, body="Sale today"), marketer, approver
    )
    make_contacts(1, group, start=10)

    campaign = comes_due(campaign)

    assert campaign.status == S.COMPLETED
    assert len(messaging.outbox) == 11


def test_a_campaign_approved_before_renderings_were_kept_is_held_not_sent(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="G")
    make_contacts(2, group)
    campaign = approved_for_later(make_campaign(locmem, group), marketer, approver)
    campaign.approved_content.delete()  # as for a campaign approved by an older Herald
    campaign = Campaign.objects.get(pk=campaign.pk)

    campaign = comes_due(campaign)

    assert messaging.outbox == [] and campaign.status == S.PENDING_APPROVAL


def test_the_approver_sees_why_it_is_back_with_old_and_new_side_by_side(
    templated: Campaign, marketer: User, approver: User, client: Client
) -> None:
    campaign = approved_for_later(templated, marketer, approver)
    edit_template(campaign, body="Hi {{first_name}}, NEW")
    comes_due(campaign)
    client.force_login(approver)

    for url in (
        "/approvals/",
        f"/campaigns/{campaign.pk}/",
        f"/admin/campaigns/campaign/{campaign.pk}/change/",
    ):
        page = client.get(url).content.decode()
        assert "Held for approval again" in page, url
        assert "Hi Name0, sale today" in page and "Hi Name0, NEW" in page, url


def test_approving_records_the_audience_rules_result_in_the_audit_log(
    templated: Campaign, marketer: User, approver: User
) -> None:
    OptOut.objects.create(phone=phone(0), channel="sms")
    approved_for_later(templated, marketer, approver)

    event = AuditEvent.objects.get(detail__action="approve")
    assert event.detail["approved"] == {
        "audience": 4,
        "queued": 3,
        "skipped": {
            "opted_out": 1,
            "erased": 0,
            "invalid_number": 0,
            "duplicate": 0,
            "frequency_cap": 0,
            "no_send_window": 0,
        },
        "segments": 3,
        "cost": "0.00000",
        "currency": "GBP",
    }


def test_editing_a_template_in_the_admin_warns_of_the_campaigns_it_holds(
    templated: Campaign, marketer: User, approver: User, admin_client: Client
) -> None:
    approved_for_later(templated, marketer, approver)
    template = templated.template
    assert template is not None

    response = admin_client.post(
        f"/admin/campaigns/messagetemplate/{template.pk}/change/",
        {"name": template.name, "channel": "sms", "body": "Hi {{first_name}}, changed"},
        follow=True,
    )

    assert "1 submitted or approved campaign(s) use this template" in response.content.decode()


def test_a_hold_found_part_way_through_a_build_deletes_what_was_built_unsent(
    locmem: ProviderAccount, make_campaign: Callable[..., Campaign], marketer: User, approver: User
) -> None:
    group = Group.objects.create(name="G")
    Contact.objects.bulk_create(
        Contact(phone=phone(i), first_name="Ada", attributes={"city": "Leeds"}) for i in range(5001)
    )
    group.contacts.add(*Contact.objects.all())
    campaign = make_campaign(locmem, group, body="{{first_name}} in {{city}}")
    campaign = approved_for_later(campaign, marketer, approver)
    last = Contact.objects.order_by("pk").last()
    assert last is not None
    Contact.objects.filter(pk=last.pk).update(attributes={"city": "elsewhere.example"})

    campaign = comes_due(campaign)  # the first 5,000 are built before the last is read

    assert campaign.status == S.PENDING_APPROVAL
    assert campaign.messages.count() == 0 and messaging.outbox == []
    assert campaign.audience_stats == {} and campaign.materialised_at is None
