"""API routes: contacts (list, get by id or by number, upsert one or up to 10,000, erase).

Writes go through the import's own rules (contacts.upserts): the same cleaning, the same
refusal of erased numbers, the same writer. Erasing is contacts.erasure's, as on the
dashboard. A token needs its scope and its user the permissions the dashboard asks for.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import phonenumbers
from django.conf import settings
from django.db import IntegrityError
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from ninja.openapi.schema import REF_TEMPLATE
from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic import ValidationError as SchemaError

from api.auth import require
from api.errors import ApiError, invalid, not_found
from api.models import Scope
from api.pagination import MAX_LIMIT, page
from contacts.erasure import erase
from contacts.importing import FIELDS
from contacts.memberships import members_condition
from contacts.models import Channel, Contact, Group, OptOut, Tag
from contacts.phones import InvalidPhoneNumber, to_e164
from contacts.search import search_contacts
from contacts.storable import storable_text
from contacts.upserts import ContactRow, Upserted, upsert

router = Router(tags=["contacts"])

VIEW = "contacts.view_contact"
#: An upsert may create a contact or change one: both, as the admin asks of an import.
WRITE = (VIEW, "contacts.add_contact", "contacts.change_contact")
#: The dashboard's erase page asks this (and the view permission).
ERASE = (VIEW, "contacts.delete_contact")
#: The most contacts one bulk request may carry, and the most bytes its body may hold.
MOST_ROWS = 10_000
MOST_BYTES = 16 * 1024 * 1024
#: Where new contacts say they came from.
CONSENT_SOURCE = "api"


def _storable(text: str) -> str:
    if not storable_text(text):
        raise ValueError("holds NUL or unpaired surrogate characters, which cannot be stored")
    return text


#: Text a database can store: a NUL would reach PostgreSQL as an error, not as a refusal.
Text = Annotated[str, AfterValidator(_storable)]
#: A row id: what the databases' 64-bit ids can hold (a bigger one is a 422, not a 500).
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
AttributeValue = str | int | float | bool | None


# Schemas.


class ContactIn(BaseModel):
    """A contact to create or update, found by its number. Omitted, null or empty values
    leave what is stored as it is; attributes are merged; groups and tags are added."""

    # A plain pydantic model, not a ninja Schema: a Schema reads its input through a getter
    # made for ORM objects, and validates it twice when extra keys are refused; a bulk
    # request validates 10,000 of these.
    # The values are checked as a file's cells are (contacts.upserts), text a database
    # cannot store included; names of groups and tags here, before they are looked up.
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(description="Any form: +44 7911 123456, 07911 123456 (in `region`).")
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    language: str | None = None
    timezone: str | None = Field(None, description="IANA zone, e.g. Europe/London.")
    attributes: dict[str, AttributeValue] = Field(
        default_factory=dict, description="Custom fields, usable as {{name}} in templates."
    )
    groups: list[Text] = Field(default_factory=list, description="Names of existing groups.")
    tags: list[Text] = Field(default_factory=list, description="Names of existing tags.")


class BulkIn(Schema):
    contacts: list[ContactIn] = Field(max_length=MOST_ROWS)


class ContactOut(Schema):
    id: int
    phone: str = Field(description="E.164.")
    country: str = Field(description="ISO code of the number's country.")
    first_name: str
    last_name: str
    email: str
    language: str
    timezone: str
    attributes: dict[str, Any]
    groups: list[str]
    tags: list[str]
    opted_out: list[str] = Field(description="Channels the number is on the opt-out list of.")
    consent_source: str
    consent_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ContactPage(Schema):
    results: list[ContactOut]
    next_cursor: str | None


class ContactFilters(Schema):
    group: Text | None = Field(None, description="Members of the group of this name.")
    tag: Text | None = Field(None, description="Carriers of the tag of this name.")
    phone: Text | None = Field(None, description="This number, in any form.")
    region: Text | None = Field(None, description="Country of numbers written without +.")
    search: Text | None = Field(
        None, description="As the dashboard's search: a number or its start, a name's start, "
        "an e-mail.",
    )  # fmt: skip
    opted_out: bool | None = Field(None, description="On an opt-out list (of `channel`) or not.")
    channel: Channel | None = None
    created_after: datetime | None = None
    updated_after: datetime | None = None
    cursor: Text | None = None
    limit: int | None = Field(None, ge=1, le=MAX_LIMIT, description="100 when not given.")


class RowErrorOut(Schema):
    index: int = Field(description="The row's place in the request, from 0.")
    errors: dict[str, list[str]]


class BulkOut(Schema):
    created: int
    updated: int
    unchanged: int
    failed: int
    errors: list[RowErrorOut]


class ErasedOut(Schema):
    erased: dict[str, int] = Field(description="Rows changed, by kind.")


# Reading.


def region_of(region: str | None) -> str:
    """The country numbers without + are read in: `region`, else HERALD_DEFAULT_REGION."""
    chosen = (region or settings.HERALD_DEFAULT_REGION).upper()
    if phonenumbers.country_code_for_region(chosen) == 0:
        raise invalid(f"Unknown region {chosen[:10]!r}: use a country code like GB.", {
            "region": ["unknown region"]
        })  # fmt: skip
    return chosen


def e164(text: str, region: str | None, name: str = "phone") -> str:
    """The number in E.164, or 422 saying why it is none."""
    try:
        return to_e164(text, region_of(region))
    except InvalidPhoneNumber as exc:
        raise invalid("Not a valid phone number.", {name: [str(exc)]}) from None


def presentable(contacts: QuerySet[Contact]) -> QuerySet[Contact]:
    """With what ContactOut shows: names of groups and tags, and opt-outs by channel."""
    opted_out = {
        f"opted_out_{channel}": Exists(
            OptOut.objects.filter(phone=OuterRef("phone"), channel=channel)
        )
        for channel in Channel.values
    }
    return contacts.annotate(**opted_out).prefetch_related(
        Prefetch("groups", queryset=Group.objects.only("name")),
        Prefetch("tags", queryset=Tag.objects.only("name")),
    )


def shown(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.pk,
        "phone": contact.phone,
        "country": contact.country,
        **{name: getattr(contact, name) for name in FIELDS},
        "attributes": contact.attributes,
        "groups": [group.name for group in contact.groups.all()],
        "tags": [tag.name for tag in contact.tags.all()],
        "opted_out": [c for c in Channel.values if getattr(contact, f"opted_out_{c}", False)],
        "consent_source": contact.consent_source,
        "consent_at": contact.consent_at,
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
    }


def one(contacts: QuerySet[Contact]) -> dict[str, Any]:
    contact = presentable(contacts).first()
    if contact is None:
        raise not_found("No such contact.")
    return shown(contact)


def named(model: type[Group] | type[Tag], name: str, kind: str) -> int:
    found = model.objects.filter(name=name).values_list("pk", flat=True).first()
    if found is None:
        raise invalid(f"There is no {kind} named {name[:100]!r}.", {kind: ["unknown"]})
    return found


def filtered(filters: ContactFilters) -> QuerySet[Contact]:
    contacts: QuerySet[Contact] = Contact.objects.all()
    if filters.group is not None:
        group_id = named(Group, filters.group, "group")
        contacts = contacts.filter(members_condition(Contact.groups.through, "group_id", group_id))
    if filters.tag is not None:
        tag_id = named(Tag, filters.tag, "tag")
        contacts = contacts.filter(members_condition(Contact.tags.through, "tag_id", tag_id))
    if filters.phone is not None:
        contacts = contacts.filter(phone=e164(filters.phone, filters.region))
    if filters.search:
        contacts = search_contacts(contacts, filters.search[:100])
    if filters.opted_out is not None:
        channels = [filters.channel] if filters.channel else Channel.values
        listed = Exists(OptOut.objects.filter(phone=OuterRef("phone"), channel__in=channels))
        contacts = contacts.filter(listed if filters.opted_out else ~listed)
    if filters.created_after is not None:
        contacts = contacts.filter(created_at__gt=filters.created_after)
    if filters.updated_after is not None:
        contacts = contacts.filter(updated_at__gt=filters.updated_after)
    return contacts


@router.get("", response=ContactPage, summary="List contacts")
def list_contacts(request: HttpRequest, filters: Query[ContactFilters]) -> dict[str, Any]:
    """Newest first. Filters combine (all must hold); `opted_out` without `channel` means
    any channel (true) or none (false)."""
    require(request, Scope.CONTACTS_READ, VIEW)
    contacts = presentable(filtered(filters))
    return page(contacts, filters.cursor, filters.limit, shown)


# Writing.


def as_row(contact: ContactIn) -> ContactRow:
    fields = {name: value for name in FIELDS if (value := getattr(contact, name))}
    attributes = {
        key: _attribute_text(value)
        for key, value in contact.attributes.items()
        if value is not None
    }
    return ContactRow(contact.phone, fields, attributes, contact.groups, contact.tags)


def _attribute_text(value: str | int | float | bool) -> str:
    """Attributes are text, as a file's cells are: true/false for booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def written(rows: list[ContactRow], region: str | None) -> Upserted:
    try:
        return upsert(rows, region_of(region), CONSENT_SOURCE)
    except IntegrityError:
        raise ApiError(
            409, "conflict", "Another request changed these contacts meanwhile: try again."
        ) from None


@router.post("", response={200: ContactOut, 201: ContactOut}, summary="Create or update a contact")
def upsert_contact(
    request: HttpRequest, contact: ContactIn, region: Text | None = None
) -> Status[Any]:
    """Found by its number: 201 when created, 200 when it existed (changed or not).

    Checked as an imported row is: the number (read in `region`, else
    HERALD_DEFAULT_REGION), lengths, e-mail, time zone; an erased number is refused (422).
    """
    require(request, Scope.CONTACTS_WRITE, *WRITE)
    outcome = written([as_row(contact)], region)
    if outcome.errors:
        raise invalid("The contact was not saved.", outcome.errors[0])
    status = 201 if outcome.counts.imported else 200
    return Status(status, one(Contact.objects.filter(pk=outcome.ids[0])))


BULK_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                key: value
                for key, value in BulkIn.model_json_schema(ref_template=REF_TEMPLATE).items()
                if key != "$defs"  # ContactIn is among the schema's components already
            }
        }
    },
}


@router.post(
    "/bulk",
    response=BulkOut,
    summary="Create or update up to 10,000 contacts",
    openapi_extra={"requestBody": BULK_BODY},
)
def bulk_upsert(request: HttpRequest, region: Text | None = None) -> dict[str, Any]:
    """`{"contacts": [...]}`, each as for one contact. Every good row is written (in one
    transaction); each refused row is listed by its index with its errors, and counted in
    `failed`, as is a repeat of an earlier row's number. More than 10,000 rows, or a body
    over 16 MB, is refused whole (413)."""
    require(request, Scope.CONTACTS_WRITE, *WRITE)
    items = _bulk_items(request)
    rows: dict[int, ContactRow] = {}
    errors: dict[int, dict[str, list[str]]] = {}
    for index, item in enumerate(items):
        try:
            rows[index] = as_row(ContactIn.model_validate(item))
        except SchemaError as exc:
            errors[index] = _schema_errors(exc)
    outcome = written(list(rows.values()), region)
    indexes = list(rows)
    errors.update({indexes[i]: found for i, found in outcome.errors.items()})
    counts = outcome.counts
    return {
        "created": counts.imported,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "failed": outcome.failed + len(items) - len(rows),
        "errors": [{"index": i, "errors": errors[i]} for i in sorted(errors)],
    }


def _bulk_items(request: HttpRequest) -> list[Any]:
    """The body's rows, read here rather than by ninja: 10,000 rows may outgrow Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), and a malformed row is that row's error only."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > MOST_BYTES:
        raise _too_large(f"The body may hold at most {MOST_BYTES // 1024 // 1024} MB.")
    try:
        body = json.loads(request.read(MOST_BYTES + 1) or b"null")
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_request", "The body is not JSON.") from None
    items = body.get("contacts") if isinstance(body, dict) else None
    if not isinstance(items, list) or set(body) - {"contacts"}:
        raise invalid(
            'Send {"contacts": [...]}.', {"contacts": ["a list of contacts, and nothing else"]}
        )
    if len(items) > MOST_ROWS:
        raise _too_large(f"At most {MOST_ROWS:,} contacts a request; this one has {len(items):,}.")
    return items


def _too_large(message: str) -> ApiError:
    return ApiError(413, "too_large", message, {"most_rows": MOST_ROWS, "most_bytes": MOST_BYTES})


def _schema_errors(exc: SchemaError) -> dict[str, list[str]]:
    """Pydantic's errors by field (never the input echoed back)."""
    found: dict[str, list[str]] = {}
    for error in exc.errors():
        location = error.get("loc") or ("__all__",)
        found.setdefault(str(location[0]), []).append(str(error.get("msg", "")))
    return found


# Reading one (declared after /bulk: Django tries the paths in order, and "bulk" would
# be taken for a {contact_id}).


@router.get("/{contact_id}", response=ContactOut, summary="Get a contact")
def get_contact(request: HttpRequest, contact_id: Id) -> dict[str, Any]:
    require(request, Scope.CONTACTS_READ, VIEW)
    return one(Contact.objects.filter(pk=contact_id))


@router.get("/by-phone/{phone}", response=ContactOut, summary="Get a contact by its number")
def get_contact_by_phone(request: HttpRequest, phone: Text, region: Text | None = None) -> Any:
    """The number in any form, URL-encoded: `+44%207911%20123456`, `07911123456` (read in
    `region`, else HERALD_DEFAULT_REGION) and `00447911123456` find the same contact."""
    require(request, Scope.CONTACTS_READ, VIEW)
    return one(Contact.objects.filter(phone=e164(phone, region)))


# Erasing.


@router.delete("/{contact_id}", response=ErasedOut, summary="Erase a contact (GDPR)")
def erase_contact(request: HttpRequest, contact_id: Id) -> dict[str, Any]:
    """The contact and every copy of its number, for good, as the dashboard's erase page
    does; the number is refused everywhere from then on. No undo."""
    require(request, Scope.CONTACTS_WRITE, *ERASE)
    if not Contact.objects.filter(pk=contact_id).exists():
        raise not_found("No such contact.")
    return {"erased": erase(contact_ids=[contact_id])}


@router.delete("/by-phone/{phone}", response=ErasedOut, summary="Erase a number (GDPR)")
def erase_number(request: HttpRequest, phone: Text, region: Text | None = None) -> Any:
    """A number everywhere it appears, for good, whether or not a contact holds it (as the
    shell's `contact erase` does); it is refused everywhere from then on. No undo."""
    require(request, Scope.CONTACTS_WRITE, *ERASE)
    return {"erased": erase(phones=[e164(phone, region)])}
