"""API routes: campaigns (list, get with their kept counts, create a draft, submit it).

A draft is made by campaigns.drafts, the code behind the CLI's `campaign create`, so the
same names, rules and refusals hold; submitting goes through `Campaign.act` as the token's
user, checked and audited as on the dashboard. Approving and rejecting stay a person's
act in the dashboard or the admin: no route here takes them, whatever the token's user may
do there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from pydantic import AfterValidator, ConfigDict

from api.auth import require
from api.errors import ApiError, forbidden, invalid, not_found, validation_details
from api.models import Scope
from api.pagination import page
from campaigns import drafts
from campaigns.models import AUDIENCE_FIELDS, ABMode, Campaign, TransitionNotAllowed
from campaigns.status import counts_of, summary
from contacts.models import Channel
from contacts.storable import storable_text

router = Router(tags=["campaigns"])

VIEW = "campaigns.view_campaign"
#: What the dashboard's builder asks (dashboard.access.can_build), and seeing the result.
BUILD = (VIEW, "campaigns.add_campaign", "campaigns.change_campaign")
MAX_ID = 2**63 - 1


def _storable(text: str) -> str:
    if not storable_text(text):
        raise ValueError("holds NUL or unpaired surrogate characters, which cannot be stored")
    return text


#: Text a database can store: a NUL would reach PostgreSQL as an error, not as a refusal.
Text = Annotated[str, AfterValidator(_storable)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Names = list[Text]


# Schemas.


class CountsOut(Schema):
    """Messages per status, as `campaign status --json` gives them."""

    pending: int
    sending: int
    sent: int
    delivered: int
    failed: int
    skipped: int
    in_doubt: int


class ClicksOut(Schema):
    unique: int = Field(description="Recipients who followed one of its short links.")
    total: int


class VariantOut(Schema):
    variant: str
    counts: CountsOut
    clicks: ClicksOut
    winner: bool


class CampaignOut(Schema):
    id: int
    name: str
    status: Campaign.Status
    channel: str
    provider: str = Field(description="The provider account's name.")
    sender: str
    owner: str | None = Field(description="Who created it.")
    counts: CountsOut
    scheduled_at: datetime | None
    submitted_at: datetime | None
    approved_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AudienceOut(Schema):
    groups: list[str]
    tags: list[str]
    segments: list[str]
    exclude_groups: list[str]
    exclude_tags: list[str]
    exclude_segments: list[str]


class CampaignDetailOut(CampaignOut):
    body: str
    template: str | None = Field(description="The message template's name, if it uses one.")
    whatsapp_template: str
    variant_bodies: list[str] = Field(description="A/B: the texts of variants B to D.")
    audience: AudienceOut
    time_zone: str
    frequency_cap: str
    short_links: bool
    utm: bool
    pause_reason: str
    rejection_reason: str
    estimate: dict[str, Any] = Field(description="Audience, segments and cost at submit.")
    clicks: ClicksOut
    variants: list[VariantOut] | None = Field(description="A/B: each variant's figures.")


class CampaignPage(Schema):
    results: list[CampaignOut]
    next_cursor: str | None


class CampaignFilters(Schema):
    status: Campaign.Status | None = None
    cursor: Text | None = None
    limit: int | None = Field(None, description="1 to 1,000; 100 when not given.")


class CampaignIn(Schema):
    """A draft, named as the CLI's `campaign create` names it: accounts, groups, tags and
    segments by name. Nothing is sent until it is submitted and a person approves it."""

    model_config = ConfigDict(extra="forbid")

    name: Text
    provider: Text = Field(description="The provider account's name.")
    body: Text | None = Field(None, description="The text; {{first_name}} and the like work.")
    template: Id | Text | None = Field(
        None, description="A message template (id or name) whose text goes when body is empty."
    )
    variants: Names = Field(default_factory=list, description="A/B: texts of variants B to D.")
    split: list[int] | None = Field(None, description="A/B split: shares in %, A first.")
    test_share: int | None = Field(
        None, description="A/B test: the share (%) the variants go to before the winner."
    )
    test_hours: int = Field(4, description="A/B test: hours before the winner is picked.")
    winner_by: Literal["clicks", "delivery"] = "clicks"
    channel: Channel = Channel.SMS
    whatsapp_template: Text | None = Field(
        None, description="WhatsApp: the provider's approved template id."
    )
    groups: Names = Field(default_factory=list)
    tags: Names = Field(default_factory=list)
    segments: Names = Field(default_factory=list)
    exclude_groups: Names = Field(default_factory=list)
    exclude_tags: Names = Field(default_factory=list)
    exclude_segments: Names = Field(default_factory=list)
    sender: Text = Field("", description="Empty: the account's sender.")
    frequency_cap: Text = Field(
        "house", description="N/D (N messages per D days), off or house; N/D and off only "
        "for users allowed to override the house cap.",
    )  # fmt: skip
    short_links: bool = True
    utm: bool = True
    scheduled_at: datetime | None = Field(
        None, description="Empty: on approval. Without an offset, read in time_zone."
    )
    time_zone: Text | None = Field(None, description="Default Europe/London.")


# Reading.


def _campaigns() -> QuerySet[Campaign]:
    return Campaign.objects.select_related("provider_account", "created_by")


def shown(campaign: Campaign, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": campaign.pk,
        "name": campaign.name,
        "status": campaign.status,
        "channel": campaign.channel,
        "provider": campaign.provider_account.name,
        "sender": campaign.sender_id,
        "owner": campaign.created_by.get_username() if campaign.created_by else None,
        "counts": counts,
        "scheduled_at": campaign.scheduled_at,
        "submitted_at": campaign.submitted_at,
        "approved_at": campaign.approved_at,
        "started_at": campaign.started_at,
        "completed_at": campaign.completed_at,
        "created_at": campaign.created_at,
        "updated_at": campaign.updated_at,
    }


def detail(campaign_id: int) -> dict[str, Any]:
    """One campaign with its content, audience and figures (those of `status --json`)."""
    found = (
        _campaigns()
        .select_related("template")
        .prefetch_related(*(Prefetch(part) for part in AUDIENCE_FIELDS))
        .filter(pk=campaign_id)
        .first()
        if 1 <= campaign_id <= MAX_ID
        else None
    )
    if found is None:
        raise not_found("No such campaign.")
    figures = summary(found)
    template = found.template
    return {
        **shown(found, figures["counts"]),
        "body": found.body,
        "template": template.name if template else None,
        "whatsapp_template": template.whatsapp_template_id if template else "",
        "variant_bodies": list(found.variant_bodies),
        "audience": {
            part: [row.name for row in getattr(found, part).all()] for part in AUDIENCE_FIELDS
        },
        "time_zone": found.time_zone,
        "frequency_cap": found.frequency_cap,
        "short_links": found.track_links,
        "utm": found.link_utm,
        "pause_reason": found.pause_reason,
        "rejection_reason": found.rejection_reason,
        "estimate": found.estimate,
        "clicks": figures["clicks"],
        "variants": figures.get("variants"),
    }


@router.get("", response=CampaignPage, summary="List campaigns")
def list_campaigns(request: HttpRequest, filters: Query[CampaignFilters]) -> dict[str, Any]:
    """Newest first, each with its message counts."""
    require(request, Scope.CAMPAIGNS_READ, VIEW)
    campaigns = _campaigns()
    if filters.status is not None:
        campaigns = campaigns.filter(status=filters.status)
    found = page(campaigns, filters.cursor, filters.limit)
    counts = counts_of(c.pk for c in found["results"])
    found["results"] = [shown(c, counts[c.pk]) for c in found["results"]]
    return found


@router.get("/{campaign_id}", response=CampaignDetailOut, summary="Get a campaign")
def get_campaign(request: HttpRequest, campaign_id: int) -> dict[str, Any]:
    """With its content, audience, kept counts, clicks and (A/B) each variant's figures."""
    require(request, Scope.CAMPAIGNS_READ, VIEW)
    return detail(campaign_id)


# Writing.


def draft_of(payload: CampaignIn) -> drafts.Draft:
    return drafts.Draft(
        name=payload.name,
        provider=payload.provider,
        body=payload.body or "",
        variant_bodies=tuple(payload.variants),
        ab=_ab_settings(payload),
        channel=payload.channel,
        template=payload.template,
        whatsapp_template=payload.whatsapp_template or "",
        audience={part: getattr(payload, part) for part in AUDIENCE_FIELDS},
        sender=payload.sender,
        frequency_cap=payload.frequency_cap,
        track_links=payload.short_links,
        link_utm=payload.utm,
        scheduled_at=payload.scheduled_at,
        time_zone=payload.time_zone or "",
    )


def _ab_settings(payload: CampaignIn) -> dict[str, Any]:
    """The model's A/B fields: a split (equal shares unless given), or a test share."""
    if not payload.variants:
        if payload.split is not None or payload.test_share is not None:
            raise invalid("split and test_share are for A/B campaigns: give variants.", {
                "variants": ["none given"]
            })  # fmt: skip
        return {}
    if payload.split is not None and payload.test_share is not None:
        raise invalid("An A/B campaign is a split or a test, not both.", {
            "split": ["give split or test_share, not both"]
        })  # fmt: skip
    if payload.test_share is not None:
        return {
            "ab_mode": ABMode.TEST,
            "ab_test_share": payload.test_share,
            "ab_test_hours": payload.test_hours,
            "ab_winner_by": payload.winner_by,
        }
    return {"ab_mode": ABMode.SPLIT, "ab_split": payload.split or []}


#: The model's field names, as this API names them in refusals.
API_NAMES = {
    "variant_bodies": "variants",
    "ab_split": "split",
    "ab_test_share": "test_share",
    "ab_test_hours": "test_hours",
    "ab_winner_by": "winner_by",
    "track_links": "short_links",
    "link_utm": "utm",
    "provider_account": "provider",
}


def _refusal(error: ValidationError) -> ApiError:
    if isinstance(error, drafts.Refused):
        return invalid(error.text[:1].upper() + error.text[1:] + ".", {
            error.field_name: [error.text]
        })  # fmt: skip
    details = {API_NAMES.get(k, k): v for k, v in validation_details(error).items()}
    return invalid("The campaign was not saved: see details.", details)


@router.post("", response={201: CampaignDetailOut}, summary="Create a draft campaign")
def create_campaign(request: HttpRequest, payload: CampaignIn) -> dict[str, Any]:
    """A draft, with the rules of the dashboard's builder and the CLI; 422 with details
    per field when one is broken."""
    user = require(request, Scope.CAMPAIGNS_WRITE, *BUILD)
    try:
        campaign = drafts.create(draft_of(payload), by=user)
    except ValidationError as exc:
        raise _refusal(exc) from None
    return detail(campaign.pk)


@router.post("/{campaign_id}/submit", response=CampaignDetailOut, summary="Submit for approval")
def submit_campaign(request: HttpRequest, campaign_id: int) -> dict[str, Any]:
    """A draft goes to the approval queue, as the token's user, audited as on the dashboard.
    409 `conflict` from any other state; 422 when it cannot be submitted (no text, no
    audience, ...). Approval is a person's act in the dashboard: there is no route for it."""
    user = require(request, Scope.CAMPAIGNS_WRITE, VIEW)
    campaign = _campaigns().filter(pk=campaign_id).first() if 1 <= campaign_id <= MAX_ID else None
    if campaign is None:
        raise not_found("No such campaign.")
    try:
        campaign.act("submit", user)
    except PermissionDenied as exc:
        raise forbidden(str(exc)) from None
    except TransitionNotAllowed as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except ValidationError as exc:
        raise invalid(" ".join(exc.messages), validation_details(exc)) from None
    return detail(campaign.pk)
