"""API routes: groups and tags (list; add contacts to one, take them out), opt-outs (list,
add, remove) and segments (list, count now).

Each goes through the owner the dashboard uses: contacts.memberships, OptOut.objects.
add_by_staff (audited as on a contact's page, the number redacted), campaigns.segments.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import ConfigDict

from api.auth import require
from api.contacts import VIEW, Id, RowErrorOut, Text, e164, region_of
from api.errors import ApiError, invalid, not_found, validation_details
from api.models import Scope
from api.pagination import MAX_LIMIT, page
from audit.models import AuditEvent
from campaigns.segments import Evaluation, RuleError, Segment
from contacts import memberships
from contacts.models import Channel, Contact, Group, OptOut, Tag
from contacts.phones import InvalidPhoneNumber, redact, to_e164

router = Router(tags=["audience"])

#: Adding to a group or tag, or taking out, is changing the contacts (the dashboard's rule).
CHANGE_MEMBERS = (VIEW, "contacts.change_contact")
VIEW_OPT_OUTS = "contacts.view_optout"
ADD_OPT_OUT = "contacts.add_optout"
REMOVE_OPT_OUT = "contacts.delete_optout"
VIEW_SEGMENTS = "campaigns.view_segment"


# Groups and tags.


class GroupOut(Schema):
    id: int
    name: str
    description: str
    created_at: datetime


class GroupPage(Schema):
    results: list[GroupOut]
    next_cursor: str | None


class TagOut(Schema):
    id: int
    name: str


class TagPage(Schema):
    results: list[TagOut]
    next_cursor: str | None


class NamedFilters(Schema):
    name: Text | None = Field(None, description="Only the one of this exact name.")
    cursor: Text | None = None
    limit: int | None = Field(None, ge=1, le=MAX_LIMIT, description="100 when not given.")


class MembersIn(Schema):
    """Contacts by id, by number (any form, read in `region`), or both."""

    model_config = ConfigDict(extra="forbid")

    contact_ids: list[Id] = Field(default_factory=list)
    phones: list[Text] = Field(default_factory=list)


class MembersOut(Schema):
    changed: int = Field(description="Contacts added (or taken out).")
    unchanged: int = Field(description="Contacts that were in it already (or not in it).")
    unknown_contact_ids: list[int]
    unknown_phones: list[str] = Field(description="Valid numbers no contact has, as sent.")
    invalid_phones: list[RowErrorOut] = Field(description="By their index in `phones`.")


def _named_list(model: Any, filters: NamedFilters, shown: Any) -> dict[str, Any]:
    rows = model.objects.all()
    if filters.name is not None:
        rows = rows.filter(name=filters.name)
    return page(rows, filters.cursor, filters.limit, shown)


@router.get("/groups", response=GroupPage, summary="List groups")
def list_groups(request: HttpRequest, filters: Query[NamedFilters]) -> dict[str, Any]:
    require(request, Scope.CONTACTS_READ, "contacts.view_group")
    return _named_list(Group, filters, _group)


@router.get("/tags", response=TagPage, summary="List tags")
def list_tags(request: HttpRequest, filters: Query[NamedFilters]) -> dict[str, Any]:
    require(request, Scope.CONTACTS_READ, "contacts.view_tag")
    return _named_list(Tag, filters, lambda tag: {"id": tag.pk, "name": tag.name})


def _group(group: Group) -> dict[str, Any]:
    return {
        "id": group.pk,
        "name": group.name,
        "description": group.description,
        "created_at": group.created_at,
    }


def _members(body: MembersIn, region: str | None) -> tuple[list[int], dict[str, Any]]:
    """The contacts `body` names, and what it named that is none: unknown ids and numbers,
    and text that is no number."""
    if len(body.contact_ids) + len(body.phones) > memberships.MOST_NUMBERS:
        raise ApiError(
            413, "too_large", f"At most {memberships.MOST_NUMBERS:,} contacts a request."
        )
    country = region_of(region)
    numbers: dict[str, str] = {}  # E.164 -> as sent
    invalid_phones = []
    for index, text in enumerate(body.phones):
        try:
            numbers.setdefault(to_e164(text, country), text)
        except InvalidPhoneNumber as exc:
            invalid_phones.append({"index": index, "errors": {"phone": [str(exc)]}})
    by_phone = memberships.contacts_with(list(numbers))
    wanted = set(body.contact_ids)
    found = set(Contact.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    unknown = {
        "unknown_contact_ids": sorted(wanted - found),
        "unknown_phones": [text for phone, text in numbers.items() if phone not in by_phone],
        "invalid_phones": invalid_phones,
    }
    return sorted(found | set(by_phone.values())), unknown


def _changed(ids: list[int], changed: int, unknown: dict[str, Any]) -> dict[str, Any]:
    return {"changed": changed, "unchanged": len(ids) - changed, **unknown}


def _group_of(group_id: Id) -> Group:
    group = Group.objects.filter(pk=group_id).first()
    if group is None:
        raise not_found("No such group.")
    return group


def _tag_of(tag_id: Id) -> Tag:
    tag = Tag.objects.filter(pk=tag_id).first()
    if tag is None:
        raise not_found("No such tag.")
    return tag


@router.post("/groups/{group_id}/members", response=MembersOut, summary="Add to a group")
def add_to_group(
    request: HttpRequest, group_id: Id, body: MembersIn, region: Text | None = None
) -> dict[str, Any]:
    """Up to 10,000 contacts at once; those in the group already stay as they are."""
    require(request, Scope.CONTACTS_WRITE, *CHANGE_MEMBERS)
    group = _group_of(group_id)
    ids, unknown = _members(body, region)
    return _changed(ids, memberships.add_to_group(group, ids), unknown)


@router.post(
    "/groups/{group_id}/members/remove", response=MembersOut, summary="Take out of a group"
)
def remove_from_group(
    request: HttpRequest, group_id: Id, body: MembersIn, region: Text | None = None
) -> dict[str, Any]:
    """Up to 10,000 contacts at once; the contacts themselves stay."""
    require(request, Scope.CONTACTS_WRITE, *CHANGE_MEMBERS)
    group = _group_of(group_id)
    ids, unknown = _members(body, region)
    return _changed(ids, memberships.remove_from_group(group, ids), unknown)


@router.post("/tags/{tag_id}/members", response=MembersOut, summary="Tag contacts")
def add_tag(
    request: HttpRequest, tag_id: Id, body: MembersIn, region: Text | None = None
) -> dict[str, Any]:
    """Up to 10,000 contacts at once; those carrying the tag already stay as they are."""
    require(request, Scope.CONTACTS_WRITE, *CHANGE_MEMBERS)
    tag = _tag_of(tag_id)
    ids, unknown = _members(body, region)
    return _changed(ids, memberships.add_tag(tag, ids), unknown)


@router.post("/tags/{tag_id}/members/remove", response=MembersOut, summary="Untag contacts")
def remove_tag(
    request: HttpRequest, tag_id: Id, body: MembersIn, region: Text | None = None
) -> dict[str, Any]:
    """Up to 10,000 contacts at once; the contacts themselves stay."""
    require(request, Scope.CONTACTS_WRITE, *CHANGE_MEMBERS)
    tag = _tag_of(tag_id)
    ids, unknown = _members(body, region)
    return _changed(ids, memberships.remove_tag(tag, ids), unknown)


# Opt-outs.


class OptOutOut(Schema):
    id: int
    phone: str
    channel: Channel
    source: OptOut.Source
    note: str
    created_at: datetime


class OptOutPage(Schema):
    results: list[OptOutOut]
    next_cursor: str | None


class OptOutFilters(Schema):
    channel: Channel | None = None
    source: OptOut.Source | None = None
    phone: Text | None = Field(None, description="This number, in any form.")
    region: Text | None = Field(None, description="Country of numbers written without +.")
    cursor: Text | None = None
    limit: int | None = Field(None, ge=1, le=MAX_LIMIT, description="100 when not given.")


class OptOutIn(Schema):
    model_config = ConfigDict(extra="forbid")

    phone: Text = Field(description="Any form: +44 7911 123456, 07911 123456 (in `region`).")
    channel: Channel


class RemovedOut(Schema):
    removed: int


def _opt_out(entry: OptOut) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "phone": entry.phone,
        "channel": entry.channel,
        "source": entry.source,
        "note": entry.note,
        "created_at": entry.created_at,
    }


@router.get("/opt-outs", response=OptOutPage, summary="List opt-outs")
def list_opt_outs(request: HttpRequest, filters: Query[OptOutFilters]) -> dict[str, Any]:
    """The suppression list, newest first: numbers never messaged on their channel."""
    require(request, Scope.CONTACTS_READ, VIEW_OPT_OUTS)
    entries: QuerySet[OptOut] = OptOut.objects.all()
    if filters.channel is not None:
        entries = entries.filter(channel=filters.channel)
    if filters.source is not None:
        entries = entries.filter(source=filters.source)
    if filters.phone is not None:
        entries = entries.filter(phone=e164(filters.phone, filters.region))
    return page(entries, filters.cursor, filters.limit, _opt_out)


def _audit(request: HttpRequest, action: str, phone: str, channel: str, entry: OptOut) -> None:
    """As the dashboard records it, naming the contact when there is one; never the number."""
    contact = Contact.objects.filter(phone=phone).first()
    detail = {"channel": channel, "phone": redact(phone), "through": "api"}
    AuditEvent.record(action, actor=request.user, obj=contact or entry, detail=detail)


@router.post("/opt-outs", response={200: OptOutOut, 201: OptOutOut}, summary="Add an opt-out")
def add_opt_out(request: HttpRequest, body: OptOutIn, region: Text | None = None) -> Status[Any]:
    """Put a number on a channel's list (source: staff): 201 when added, 200 when it was on
    it. An erased number is refused (422): it is suppressed everywhere already."""
    require(request, Scope.CONTACTS_WRITE, ADD_OPT_OUT)
    phone = e164(body.phone, region)
    try:
        added = OptOut.objects.add_by_staff(phone, body.channel)
    except ValidationError as exc:  # an erased number
        raise invalid("The number may not be added.", validation_details(exc)) from None
    if not added:
        return Status(200, _opt_out(OptOut.objects.get(phone=phone, channel=body.channel)))
    entry = OptOut.objects.get(phone=phone, channel=body.channel)
    _audit(request, AuditEvent.Action.OPT_OUT_ADDED, phone, body.channel, entry)
    return Status(201, _opt_out(entry))


def _remove(request: HttpRequest, entries: QuerySet[OptOut]) -> dict[str, Any]:
    removed = 0
    for entry in entries:
        if OptOut.objects.filter(pk=entry.pk).delete()[0]:
            _audit(request, AuditEvent.Action.OPT_OUT_REMOVED, entry.phone, entry.channel, entry)
            removed += 1
    return {"removed": removed}


@router.delete("/opt-outs/{opt_out_id}", response=RemovedOut, summary="Remove an opt-out")
def remove_opt_out(request: HttpRequest, opt_out_id: Id) -> dict[str, Any]:
    """The number may be messaged on that channel again (any source: a STOP reply too)."""
    require(request, Scope.CONTACTS_WRITE, REMOVE_OPT_OUT)
    entries = OptOut.objects.filter(pk=opt_out_id)
    if not entries.exists():
        raise not_found("No such opt-out.")
    return _remove(request, entries)


@router.delete(
    "/opt-outs/by-phone/{phone}", response=RemovedOut, summary="Remove a number's opt-outs"
)
def remove_opt_outs_of(
    request: HttpRequest, phone: Text, channel: Channel | None = None, region: Text | None = None
) -> dict[str, Any]:
    """The number's opt-out of `channel`, or of every channel when none is named; `removed`
    is 0 when it had none."""
    require(request, Scope.CONTACTS_WRITE, REMOVE_OPT_OUT)
    entries = OptOut.objects.filter(phone=e164(phone, region))
    if channel is not None:
        entries = entries.filter(channel=channel)
    return _remove(request, entries)


# Segments.


class SegmentOut(Schema):
    id: int
    name: str
    match: str = Field(description="all: contacts meeting every rule; any: at least one.")
    rules: list[str]
    created_at: datetime
    updated_at: datetime


class SegmentPage(Schema):
    results: list[SegmentOut]
    next_cursor: str | None


class SegmentCountOut(Schema):
    id: int
    name: str
    count: int = Field(description="Contacts matching the rules now.")
    warnings: list[str] = Field(description="E.g. a rule naming a group there is none of.")
    counted_at: datetime


def _segment(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.pk,
        "name": segment.name,
        "match": "any" if segment.match_any else "all",
        "rules": list(segment.rules),
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
    }


def _segment_of(segment_id: Id) -> Segment:
    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None:
        raise not_found("No such segment.")
    return segment


@router.get("/segments", response=SegmentPage, summary="List segments")
def list_segments(request: HttpRequest, filters: Query[NamedFilters]) -> dict[str, Any]:
    """Saved rules over contacts (made on the dashboard or with `segment create`)."""
    require(request, Scope.CONTACTS_READ, VIEW_SEGMENTS)
    return _named_list(Segment, filters, _segment)


@router.get("/segments/{segment_id}", response=SegmentOut, summary="Get a segment")
def get_segment(request: HttpRequest, segment_id: Id) -> dict[str, Any]:
    require(request, Scope.CONTACTS_READ, VIEW_SEGMENTS)
    return _segment(_segment_of(segment_id))


@router.get("/segments/{segment_id}/count", response=SegmentCountOut, summary="Count a segment now")
def count_segment(request: HttpRequest, segment_id: Id) -> dict[str, Any]:
    """Counted afresh, as `segment count` does: over a million contacts it may take a second."""
    require(request, Scope.CONTACTS_READ, VIEW_SEGMENTS)
    segment = _segment_of(segment_id)
    evaluation = Evaluation()
    try:
        size = segment.contacts(evaluation).count()
    except RuleError as exc:  # a rule saved before its checks changed
        raise invalid("The segment's rules cannot be read.", {"rules": [str(exc)]}) from None
    return {
        "id": segment.pk,
        "name": segment.name,
        "count": size,
        "warnings": evaluation.warnings,
        "counted_at": evaluation.now,
    }
