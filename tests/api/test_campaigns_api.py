"""/api/v1/campaigns: list, get with the counts `campaign status --json` gives, create a
draft by the CLI's rules, submit it. Approval stays a person's act: no token can approve."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from api.main import api
from audit.models import AuditEvent
from campaigns.models import Campaign, CampaignTransition, MessageTemplate
from campaigns.segments import Segment
from contacts.models import Contact, Group, Tag
from messaging.models import Message, ProviderAccount
from tests.api.conftest import ApiClient
from tests.conftest import phone

pytestmark = pytest.mark.django_db
M = Message.Status
S = Campaign.Status
URL = "/api/v1/campaigns"


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


@pytest.fixture
def builder(marketer: User, api_client: Callable[..., ApiClient]) -> ApiClient:
    return api_client(marketer, "campaigns:read", "campaigns:write")


@pytest.fixture
def audience(make_contacts: Callable[..., list[Contact]]) -> Group:
    newsletter = Group.objects.create(name="Newsletter")
    make_contacts(3, newsletter)
    Tag.objects.create(name="vip")
    Segment.objects.create(name="Leeds", rules=["country = GB"])
    return newsletter


def add_messages(campaign: Campaign, *statuses: str, variant: str = "") -> None:
    for status in statuses:
        n = Message.objects.count()
        Message.objects.create(
            campaign=campaign,
            provider_account=campaign.provider_account,
            phone=phone(100 + n),
            body="Hi",
            client_ref=f"ref-{n}",
            status=status,
            variant=variant,
        )


def status_json(campaign: Campaign) -> dict[str, Any]:
    out = io.StringIO()
    call_command("campaign", "status", str(campaign.pk), "--json", stdout=out)
    return dict(json.loads(out.getvalue()))


# Reading.


def test_campaigns_are_listed_newest_first_with_their_counts(
    builder: ApiClient, simulator: ProviderAccount, make_campaign: Callable[..., Campaign]
) -> None:
    spring = make_campaign(simulator)
    summer = make_campaign(simulator)
    add_messages(spring, M.DELIVERED, M.DELIVERED, M.FAILED)
    Campaign.objects.filter(pk=summer.pk).update(status=S.CANCELLED)

    listed = builder.get(URL).json()
    cancelled = builder.get(URL, status="cancelled").json()

    assert [c["id"] for c in listed["results"]] == [summer.pk, spring.pk]
    assert listed["results"][1]["counts"] == status_json(spring)["counts"]
    assert listed["results"][1]["counts"]["delivered"] == 2
    assert (listed["results"][1]["provider"], listed["results"][1]["owner"]) == ("sim", "mia")
    assert [c["id"] for c in cancelled["results"]] == [summer.pk]
    assert builder.get(URL, status="lost").status_code == 422


def test_a_campaign_shows_the_figures_of_status_json(
    builder: ApiClient, simulator: ProviderAccount, make_campaign: Callable[..., Campaign]
) -> None:
    campaign = make_campaign(simulator, body="Hi A")
    Campaign.objects.filter(pk=campaign.pk).update(variant_bodies=["Hi B"])
    campaign.refresh_from_db()
    add_messages(campaign, M.DELIVERED, M.SENT, variant="A")
    add_messages(campaign, M.FAILED, variant="B")

    shown = builder.get(f"{URL}/{campaign.pk}").json()

    expected = status_json(campaign)
    assert {key: shown[key] for key in ("id", "status", "counts", "clicks", "variants")} == expected
    assert [v["counts"]["delivered"] for v in shown["variants"]] == [1, 0]
    assert (shown["body"], shown["variant_bodies"]) == ("Hi A", ["Hi B"])


def test_an_unknown_campaign_is_404(builder: ApiClient) -> None:
    for path in (f"{URL}/999", f"{URL}/{2**70}", f"{URL}/999/submit"):
        answer = builder.get(path) if "submit" not in path else builder.post(path)
        assert answer.status_code == 404
        assert error_of(answer)["code"] == "not_found"


# Creating a draft.


def test_creating_makes_a_draft_with_its_audience_named_as_the_cli_names_it(
    builder: ApiClient, simulator: ProviderAccount, audience: Group, marketer: User
) -> None:
    answer = builder.post(
        URL,
        {
            "name": "Spring sale",
            "provider": "sim",
            "body": "Hi {{first_name}}, 20% off",
            "groups": ["Newsletter"],
            "segments": ["Leeds"],
            "exclude_tags": ["vip"],
            "sender": "Shop",
        },
    )

    assert answer.status_code == 201, answer.content
    shown = answer.json()
    campaign = Campaign.objects.get(pk=shown["id"])
    assert (campaign.status, campaign.created_by, campaign.sender) == (S.DRAFT, marketer, "Shop")
    assert [g.name for g in campaign.groups.all()] == ["Newsletter"]
    assert [t.name for t in campaign.exclude_tags.all()] == ["vip"]
    assert list(campaign.authors.all()) == [marketer]
    assert shown["audience"] == {
        "groups": ["Newsletter"],
        "tags": [],
        "segments": ["Leeds"],
        "exclude_groups": [],
        "exclude_tags": ["vip"],
        "exclude_segments": [],
    }
    assert shown["counts"] == dict.fromkeys(shown["counts"], 0)


def test_a_draft_may_take_a_template_or_an_approved_whatsapp_template(
    builder: ApiClient, simulator: ProviderAccount, audience: Group
) -> None:
    template = MessageTemplate.objects.create(name="Welcome", body="Welcome {{first_name}}")
    base = {"name": "N", "provider": "sim", "groups": ["Newsletter"]}

    from_template = builder.post(URL, {**base, "template": "Welcome"})
    by_id = builder.post(URL, {**base, "template": template.pk})
    whatsapp = builder.post(
        URL, {**base, "body": "Hi", "channel": "whatsapp", "whatsapp_template": "spring_1"}
    )

    assert from_template.json()["template"] == by_id.json()["template"] == "Welcome"
    assert Campaign.objects.get(pk=by_id.json()["id"]).message_body == "Welcome {{first_name}}"
    assert whatsapp.status_code == 201
    assert whatsapp.json()["whatsapp_template"] == "spring_1"
    assert MessageTemplate.objects.filter(whatsapp_template_id="spring_1").count() == 1


def test_a_schedule_without_an_offset_is_read_in_the_campaign_s_time_zone(
    builder: ApiClient, simulator: ProviderAccount, audience: Group
) -> None:
    base = {"name": "N", "provider": "sim", "body": "Hi", "groups": ["Newsletter"]}

    local = builder.post(
        URL, {**base, "scheduled_at": "2031-03-03T09:00:00", "time_zone": "America/New_York"}
    )
    aware = builder.post(URL, {**base, "scheduled_at": "2031-03-03T09:00:00+01:00"})
    skipped_hour = builder.post(
        URL, {**base, "scheduled_at": "2031-03-30T01:30:00", "time_zone": "Europe/London"}
    )

    assert Campaign.objects.get(pk=local.json()["id"]).scheduled_at == datetime(
        2031, 3, 3, 14, 0, tzinfo=UTC
    )
    assert Campaign.objects.get(pk=aware.json()["id"]).scheduled_at == datetime(
        2031, 3, 3, 8, 0, tzinfo=UTC
    )
    assert skipped_hour.status_code == 422
    assert "scheduled_at" in error_of(skipped_hour)["details"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"provider": "nope"}, "provider"),
        ({"groups": ["Newsletter", "Ghosts"]}, "groups"),
        ({"exclude_segments": ["Nowhere"]}, "exclude_segments"),
        ({"template": "No such"}, "template"),
        ({"channel": "whatsapp"}, "whatsapp_template"),
        ({"whatsapp_template": "t1"}, "whatsapp_template"),
        ({"frequency_cap": "off"}, "frequency_cap"),
        ({"frequency_cap": "sometimes"}, "frequency_cap"),
        ({"name": "x" * 201}, "name"),
        ({"sender": "x" * 21}, "sender"),
        ({"body": "Hi {{shoe_size}}"}, "body"),
        ({"variants": ["B text"], "split": [60, 60]}, "split"),
        ({"split": [50, 50]}, "variants"),
        ({"variants": ["B"], "split": [50, 50], "test_share": 20}, "split"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ],
)
def test_a_broken_draft_is_refused_with_422_naming_the_field(
    builder: ApiClient,
    simulator: ProviderAccount,
    audience: Group,
    changes: dict[str, Any],
    field: str,
) -> None:
    base = {"name": "N", "provider": "sim", "body": "Hi", "groups": ["Newsletter"]}

    answer = builder.post(URL, {**base, **changes})

    assert answer.status_code == 422, answer.content
    error = error_of(answer)
    assert error["code"] == "invalid" and field in error["details"], error
    assert not Campaign.objects.exists()


def test_an_approver_may_give_a_draft_its_own_frequency_cap(
    api_client: Callable[..., ApiClient],
    make_user: Callable[..., User],
    simulator: ProviderAccount,
    audience: Group,
) -> None:
    both = make_user("bea", "Marketers", "Approvers")
    client = api_client(both, "campaigns:write", "campaigns:read")

    answer = client.post(
        URL, {"name": "N", "provider": "sim", "body": "Hi", "frequency_cap": "2/7"}
    )

    assert answer.status_code == 201
    campaign = Campaign.objects.get()
    assert (campaign.frequency_cap, campaign.cap_messages, campaign.cap_days) == ("own", 2, 7)


# Submitting.


def test_submitting_sends_a_draft_for_approval_as_the_token_s_user(
    builder: ApiClient, simulator: ProviderAccount, audience: Group, marketer: User
) -> None:
    made = builder.post(
        URL, {"name": "N", "provider": "sim", "body": "Hi", "groups": ["Newsletter"]}
    )
    campaign_id = made.json()["id"]

    submitted = builder.post(f"{URL}/{campaign_id}/submit")
    again = builder.post(f"{URL}/{campaign_id}/submit")

    assert submitted.status_code == 200
    assert submitted.json()["status"] == "pending_approval"
    assert submitted.json()["estimate"]["audience"] == 3
    step = CampaignTransition.objects.get(campaign_id=campaign_id, action="submit")
    assert (step.by, step.from_status, step.to_status) == (marketer, S.DRAFT, S.PENDING_APPROVAL)
    audited = AuditEvent.objects.get(action=AuditEvent.Action.CAMPAIGN_TRANSITION)
    assert (audited.actor, audited.detail["action"]) == (marketer, "submit")
    assert (again.status_code, error_of(again)["code"]) == (409, "conflict")


def test_a_draft_that_cannot_be_submitted_is_422_saying_why(
    builder: ApiClient, simulator: ProviderAccount
) -> None:
    made = builder.post(URL, {"name": "N", "provider": "sim", "body": "Hi"})

    refused = builder.post(f"{URL}/{made.json()['id']}/submit")

    assert refused.status_code == 422
    assert "no audience" in error_of(refused)["message"]
    assert Campaign.objects.get().status == S.DRAFT


# Who may.


def test_reading_and_writing_need_their_scopes_and_the_dashboard_s_permissions(
    api_client: Callable[..., ApiClient],
    marketer: User,
    approver: User,
    simulator: ProviderAccount,
    make_campaign: Callable[..., Campaign],
) -> None:
    draft = make_campaign(simulator)
    body = {"name": "N", "provider": "sim", "body": "Hi"}
    reader = api_client(marketer, "campaigns:read")
    writer = api_client(marketer, "campaigns:write")
    approver_token = api_client(approver)

    assert reader.get(URL).status_code == 200
    assert reader.post(URL, body).status_code == 403
    assert reader.post(f"{URL}/{draft.pk}/submit").status_code == 403
    assert writer.get(URL).status_code == 403
    assert approver_token.get(URL).status_code == 200
    refused = approver_token.post(URL, body)
    assert refused.status_code == 403 and "campaigns.add_campaign" in error_of(refused)["message"]
    not_theirs = approver_token.post(f"{URL}/{draft.pk}/submit")
    assert (not_theirs.status_code, error_of(not_theirs)["message"]) == (
        403,
        "Only marketers may change campaigns.",
    )
    assert Campaign.objects.get().status == S.DRAFT


def _routes() -> list[tuple[str, str]]:
    """Every (method, path) the API serves, from its own schema."""
    schema = api.get_openapi_schema(path_prefix="/api/v1")
    return [
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_no_route_lets_even_an_approver_s_token_approve_a_campaign(
    api_client: Callable[..., ApiClient],
    make_user: Callable[..., User],
    approver: User,
    simulator: ProviderAccount,
    audience: Group,
    make_campaign: Callable[..., Campaign],
    marketer: User,
) -> None:
    campaign = make_campaign(simulator, audience)
    campaign.submit(by=marketer)
    # Every scope, and a user who may approve in the dashboard (and change campaigns too).
    boss = make_user("bea", "Marketers", "Approvers")
    clients = [api_client(approver), api_client(boss)]
    asks = {"action": "approve", "status": "scheduled", "decision": "approve", "note": "ok"}
    routes = _routes()
    assert not [path for _method, path in routes if re.search("approv|reject|decide", path)]
    tried = 0

    for client in clients:
        client.client.raise_request_exception = False
        for method, path in routes:
            url = re.sub(r"\{[^}]+\}", str(campaign.pk), path)
            for extra in ("", "/approve", "/decide", "/reject"):
                call = getattr(client, method.lower())
                call(url + extra) if method in ("GET", "DELETE") else call(url + extra, asks)
                tried += 1
        for verb in ("post", "put", "patch"):
            getattr(client, verb)(f"{URL}/{campaign.pk}", asks)

    campaign.refresh_from_db()
    assert tried > 20
    assert campaign.status == S.PENDING_APPROVAL and campaign.approved_by is None
    assert not CampaignTransition.objects.filter(action__in=("approve", "reject")).exists()
