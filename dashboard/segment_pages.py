"""Dashboard pages: segments (their list with sizes, the builder with a live count and sample
matches, and deleting one no campaign uses).

A segment's rules are rows of field, operator and value on the page, plus a text box of
rules one a line for whoever prefers to type them (and for browsers without the script
that adds rows). Each row is read as one rule, `FIELD OP VALUE`, by campaigns.segments,
which owns what a rule means; a bad row keeps what was typed and shows the rule's error.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from campaigns.forms import SegmentForm
from campaigns.models import Campaign
from campaigns.presenters import error_text
from campaigns.segment_sizes import SIZE_SECONDS, segment_size
from campaigns.segments import (
    ATTRIBUTE_PREFIX,
    ENGAGEMENT_FIELDS,
    FIELDS,
    FLAG_FIELDS,
    OPS,
    OPS_OF,
    TEXT_FIELDS,
    Evaluation,
    Rule,
    RuleError,
    Segment,
    SegmentInUse,
    in_use_text,
    kind_of,
    waiting_text,
)
from contacts import facets
from contacts.models import Contact, Group, Tag
from contacts.phones import redact
from dashboard.access import can_see_contacts, can_see_segments

View = Callable[..., HttpResponse]

ADD, CHANGE, DELETE = (
    "campaigns.add_segment",
    "campaigns.change_segment",
    "campaigns.delete_segment",
)
SEGMENTS_PER_PAGE = 50
MOST_RULES = 50
SAMPLES = 5
#: Names offered in a group's or tag's list of values.
MOST_NAMES = 200

FIELD_LABELS = {
    "first_name": "First name",
    "last_name": "Last name",
    "email": "E-mail",
    "language": "Language",
    "timezone": "Time zone",
    "created": "Date added",
    "country": "Country of the number",
    "group": "Group",
    "tag": "Tag",
    "opted_out.sms": "Opted out of SMS",
    "opted_out.whatsapp": "Opted out of WhatsApp",
    "received": "Received a message",
    "delivered": "Had a message delivered",
    "failed": "Had a message fail",
    "clicked": "Clicked a link",
    "never_messaged": "Never messaged",
}
FIELD_GROUPS = (
    ("Contact", (*TEXT_FIELDS, "created", "country")),
    ("Groups and tags", ("group", "tag")),
    ("Consent", tuple(f for f in FLAG_FIELDS if f.startswith("opted_out."))),
    ("Messages", (*ENGAGEMENT_FIELDS, "never_messaged")),
)
OP_LABELS = {
    "=": "is",
    "!=": "is not",
    "contains": "contains",
    "in": "is one of (a, b)",
    "not in": "is none of (a, b)",
    "set": "is set",
    "unset": "is not set",
    "<": "is less than",
    "<=": "is at most",
    ">": "is more than",
    ">=": "is at least",
    "before": "is before (YYYY-MM-DD)",
    "after": "is after (YYYY-MM-DD)",
    "within": "is within the last (days)",
}
#: Values suggested for fields whose values are not the contacts' own.
FIXED_VALUES = {
    "flag": ("yes", "no"),
    "engagement": ("any", "any within 7", "any within 30"),
}


def segment_permission(*needed: str) -> Callable[[View], View]:
    """Signed in (else to the login page), may view segments, and holds `needed` (else 403)."""

    def decorate(view: View) -> View:
        @login_required
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not (can_see_segments(request.user) and request.user.has_perms(needed)):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return checked

    return decorate


# --- reading the rows ---------------------------------------------------------------------


@dataclass
class RuleRow:
    """One row of the builder: a rule as chosen and typed, and what is wrong with it."""

    field: str = ""
    op: str = "="
    value: str = ""
    error: str = ""

    @property
    def text(self) -> str:
        return " ".join(part for part in (self.field, self.op, self.value) if part)

    @property
    def is_blank(self) -> bool:
        return not self.field and not self.value


@dataclass
class RuleReading:
    """The rules a builder page holds: its rows, then its text box's lines."""

    rows: list[RuleRow]
    text: str = ""
    text_errors: list[str] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        typed = self.text.splitlines()
        return [row.text for row in self.rows if not row.is_blank] + [
            line.strip() for line in typed if line.strip()
        ]

    @property
    def errors(self) -> list[str]:
        return [row.error for row in self.rows if row.error] + self.text_errors


def read_rules(data: QueryDict) -> RuleReading:
    """Every posted row and line, each checked as a rule on its own."""
    posted = itertools.zip_longest(
        data.getlist("rule_field"),
        data.getlist("rule_op"),
        data.getlist("rule_value"),
        fillvalue="",
    )
    rows = [RuleRow(f.strip(), o.strip(), v.strip()) for f, o, v in posted][:MOST_RULES]
    for row in rows:
        if row.is_blank:
            continue
        if not row.field:
            row.error = f"Choose a field for the value {row.value!r}."
            continue
        row.error = _rule_error(row.text)
    text = data.get("rules_text", "")
    errors = [_rule_error(line) for line in text.splitlines() if line.strip()]
    return RuleReading(rows, text, [error for error in errors if error])


def _rule_error(text: str) -> str:
    try:
        Rule.parse(text)
    except RuleError as exc:
        return str(exc)
    return ""


def saved_rules(segment: Segment) -> RuleReading:
    """A saved segment's rules as rows (any that no longer reads, in the text box)."""
    rows, unread = [], []
    for line in segment.rules:
        try:
            rule = Rule.parse(line)
        except RuleError:
            unread.append(line)
            continue
        rows.append(RuleRow(rule.field, rule.op, rule.value))
    return RuleReading(rows or [RuleRow()], "\n".join(unread))


# --- what the rows offer ------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChoice:
    value: str
    label: str
    kind: str
    values_list: str  # the id of the datalist of values it suggests, or ""


@dataclass(frozen=True)
class ValueList:
    id: str
    values: list[str]


@dataclass
class Choices:
    """The fields (with the contacts' attributes) and the values each suggests."""

    field_groups: list[tuple[str, list[FieldChoice]]]
    value_lists: list[ValueList]

    @property
    def values_list_of(self) -> dict[str, str]:
        return {c.value: c.values_list for _, group in self.field_groups for c in group}


def choices(rows: list[RuleRow]) -> Choices:
    """Contact fields, then the attributes contacts carry (from contacts.facets, cached),
    with any attribute a row names that they do not."""
    lists: dict[str, ValueList] = {}

    def values(key: str, found: list[str]) -> str:
        if not found:
            return ""
        lists.setdefault(key, ValueList(f"rule-values-{len(lists) + 1}", found))
        return lists[key].id

    names = {
        "group": list(Group.objects.order_by("name").values_list("name", flat=True)[:MOST_NAMES]),
        "tag": list(Tag.objects.order_by("name").values_list("name", flat=True)[:MOST_NAMES]),
    }
    groups: list[tuple[str, list[FieldChoice]]] = []
    for label, fields in FIELD_GROUPS:
        group = []
        for name in fields:
            kind = kind_of(name)
            suggested = names.get(name) or list(FIXED_VALUES.get(kind, ()))
            group.append(FieldChoice(name, FIELD_LABELS[name], kind, values(kind, suggested)))
        groups.append((label, group))
    attributes = []
    for facet in facets.attribute_facets().facets:
        top = [value for value, _ in facet.top_values if value]
        name = ATTRIBUTE_PREFIX + facet.name
        attributes.append(FieldChoice(name, facet.name, "attribute", values(name, top)))
    offered = {*FIELDS, *(choice.value for choice in attributes)}
    unknown = []  # as typed: the row says what is wrong with it
    for row in rows:
        if row.field and row.field not in offered:
            offered.add(row.field)
            if row.field.startswith(ATTRIBUTE_PREFIX):
                attributes.append(FieldChoice(row.field, row.field[5:], "attribute", ""))
            else:
                unknown.append(FieldChoice(row.field, row.field, "", ""))
    groups.insert(1, ("Custom attributes", attributes))
    if unknown:
        groups.append(("Not a field", unknown))
    return Choices(groups, list(lists.values()))


def builder_context(reading: RuleReading) -> dict[str, Any]:
    offered = choices(reading.rows)
    return {
        "reading": reading,
        "rows": [(row, offered.values_list_of.get(row.field, "")) for row in reading.rows],
        "field_groups": offered.field_groups,
        "value_lists": offered.value_lists,
        "ops": [(op, OP_LABELS[op]) for op in OPS],
        "ops_of": json.dumps({kind: list(ops) for kind, ops in OPS_OF.items()}),
        "count_url": reverse("dashboard:segment_count"),
    }


# --- the pages ----------------------------------------------------------------------------


@dataclass
class SegmentRow:
    segment: Segment
    size: int
    used_by: list[Campaign]


@segment_permission()
def segment_list(request: HttpRequest) -> HttpResponse:
    using = Campaign.objects.only("id", "name").order_by("name")
    segments = Segment.objects.prefetch_related(
        Prefetch("campaigns", queryset=using), Prefetch("excluded_from", queryset=using)
    )
    page = Paginator(segments, SEGMENTS_PER_PAGE).get_page(request.GET.get("page"))
    rows = []
    for segment in page.object_list:
        campaigns = {c.pk: c for c in (*segment.campaigns.all(), *segment.excluded_from.all())}
        rows.append(SegmentRow(segment, segment_size(segment), list(campaigns.values())))
    context = {
        "title": "Segments",
        "nav": "segments",
        "page": page,
        "rows": rows,
        "fresh_seconds": SIZE_SECONDS,
        "may_add": request.user.has_perm(ADD),
        "may_see_campaigns": request.user.has_perm("campaigns.view_campaign"),
    }
    return render(request, "dashboard/segments.html", context)


@segment_permission(ADD)
def segment_new(request: HttpRequest) -> HttpResponse:
    return _builder(request, Segment(created_by_id=request.user.pk))


@segment_permission()
def segment_page(request: HttpRequest, pk: int) -> HttpResponse:
    """The builder for those who may change segments; what the segment is, for the others."""
    segment = get_object_or_404(Segment, pk=pk)
    if request.method == "POST" or request.user.has_perm(CHANGE):
        if not request.user.has_perm(CHANGE):
            raise PermissionDenied
        return _builder(request, segment)
    context = {
        "title": f"Segment: {segment.name}",
        "nav": "segments",
        "segment": segment,
        "size": segment_size(segment),
        "used_by": Campaign.objects.filter(pk__in=segment.used_by()).only("id", "name"),
        "may_see_campaigns": request.user.has_perm("campaigns.view_campaign"),
    }
    return render(request, "dashboard/segment_view.html", context)


def _builder(request: HttpRequest, segment: Segment) -> HttpResponse:
    """The builder page: on POST save the segment when every rule reads."""
    made = segment.pk is not None
    if request.method == "POST":
        reading = read_rules(request.POST)
        data = {
            "name": request.POST.get("name", ""),
            "match_any": request.POST.get("match_any", "false"),
            "rules": "\n".join(reading.lines),
        }
        form = SegmentForm(data, instance=segment)
        if form.is_valid() and not reading.errors:
            saved: Segment = form.save(commit=False)
            waiting = saved.save_by(request.user)  # an editor is an author of its campaigns
            messages.success(request, f"Segment “{saved}” saved.")
            if waiting:
                messages.warning(request, waiting_text(waiting))
            return redirect("dashboard:segments")
    else:
        form = SegmentForm(instance=segment)
        reading = saved_rules(segment) if made else RuleReading([RuleRow()])
    context = {
        "title": f"Edit segment “{segment.name}”" if made else "New segment",
        "nav": "segments",
        "form": form,
        "segment": segment,
        "match_any": str(form["match_any"].value()).lower() in ("true", "on", "1"),
        "form_action": reverse("dashboard:segment", args=(segment.pk,))
        if made
        else reverse("dashboard:segment_new"),
        "may_delete": made and request.user.has_perm(DELETE),
        **builder_context(reading),
    }
    return render(request, "dashboard/segment.html", context)


@segment_permission()
@require_POST
def segment_count(request: HttpRequest) -> JsonResponse:
    """Who the rules as typed match now: the count, warnings, errors and a few samples."""
    reading = read_rules(request.POST)
    answer: dict[str, Any] = {
        "count": None,
        "warnings": [],
        "errors": reading.errors,
        "row_errors": [row.error for row in reading.rows],
        "samples": [],
    }
    if reading.errors or not reading.lines:
        return JsonResponse(answer)
    evaluation = Evaluation()
    match_any = request.POST.get("match_any", "").lower() in ("true", "on", "1")
    segment = Segment(match_any=match_any, rules=reading.lines)
    matching = segment.contacts(evaluation)
    answer["count"] = matching.count()
    answer["warnings"] = evaluation.warnings
    if can_see_contacts(request.user):
        first = matching.order_by("pk").only("first_name", "last_name", "phone")[:SAMPLES]
        answer["samples"] = [sample(contact) for contact in first]
    return JsonResponse(answer)


def sample(contact: Contact) -> dict[str, str]:
    name = f"{contact.first_name} {contact.last_name}".strip()
    return {"name": name or "(no name)", "phone": redact(contact.phone)}


@segment_permission(DELETE)
def segment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks first (or says which campaigns keep it); POST deletes it."""
    segment = get_object_or_404(Segment, pk=pk)
    if request.method not in ("GET", "POST"):
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    problem, status = "", 200
    if request.method == "POST":
        if request.POST.get("confirm") == "yes":
            try:
                segment.delete_by(request.user)
            except SegmentInUse as exc:
                problem, status = error_text(exc), 409
            else:
                messages.success(request, f"Segment “{segment}” deleted.")
                return redirect("dashboard:segments")
        else:
            problem, status = "Tick the box to confirm.", 400
    used = segment.used_by()
    context = {
        "title": f"Delete segment “{segment.name}”",
        "nav": "segments",
        "segment": segment,
        "problem": problem,
        "refusal": in_use_text(segment, used) if used else "",
        "used_by": Campaign.objects.filter(pk__in=used).only("id", "name"),
        "may_see_campaigns": request.user.has_perm("campaigns.view_campaign"),
    }
    return render(request, "dashboard/segment_delete.html", context, status=status)


urlpatterns = [
    path("segments/", segment_list, name="segments"),
    path("segments/new/", segment_new, name="segment_new"),
    path("segments/count/", segment_count, name="segment_count"),
    path("segments/<int:pk>/", segment_page, name="segment"),
    path("segments/<int:pk>/delete/", segment_delete, name="segment_delete"),
]
