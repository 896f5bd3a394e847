"""Dashboard pages: the contacts overview, a read-only summary that links into the admin."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count, IntegerField
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from contacts.models import Contact, Group, ImportJob, OptOut
from dashboard.access import can_see_contacts, can_see_imports

#: Beyond this many contacts the page shows PostgreSQL's estimate, not an exact count.
EXACT_COUNT_CAP = 10_000
RECENT_IMPORTS = 10


@dataclass(frozen=True)
class ContactTotal:
    value: int
    exact: bool


def contact_total() -> ContactTotal:
    """How many contacts there are, exact up to EXACT_COUNT_CAP, estimated beyond.

    An exact COUNT(*) over a million rows is a full scan on PostgreSQL; the planner's
    row estimate (kept fresh by the ANALYZE each import ends with) is free.
    """
    ids = Contact.objects.order_by().values_list("pk", flat=True)[: EXACT_COUNT_CAP + 1]
    counted = len(ids)
    if counted <= EXACT_COUNT_CAP:
        return ContactTotal(counted, exact=True)
    estimate = planner_estimate(Contact._meta.db_table)
    if not estimate:  # SQLite keeps no row estimates; its COUNT(*) reads the smallest index
        return ContactTotal(Contact.objects.order_by().count(), exact=True)
    return ContactTotal(max(estimate, counted), exact=False)


def planner_estimate(table: str) -> int:
    """PostgreSQL's estimated row count of `table`; 0 elsewhere or when it has no statistics."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    return max(int(row[0]), 0) if row else 0


def groups_with_sizes() -> list[Group]:
    """Every group with `size` (members) and `size_exact`, like the contact total.

    On PostgreSQL a group is counted up to EXACT_COUNT_CAP members (an index-only read of
    at most that many rows each); a bigger one shows the planner's estimate of its members,
    since an exact count of a million-member group reads a million rows on every visit.
    """
    if connection.vendor != "postgresql":
        groups = Group.objects.annotate(size=Count("contacts")).only("id", "name")
        return [mark(group, exact=True) for group in groups.order_by("name")]
    members, groups_table = Contact.groups.through._meta.db_table, Group._meta.db_table
    first_members = (
        f"SELECT COUNT(*) FROM (SELECT 1 FROM {members} AS m"  # noqa: S608 - names from model meta
        f" WHERE m.group_id = {groups_table}.id LIMIT %s) AS first_members"
    )
    groups = Group.objects.only("id", "name").annotate(
        size=RawSQL(  # noqa: S611 - no user input in it
            first_members,
            [EXACT_COUNT_CAP + 1],
            output_field=IntegerField(),
        )
    )
    result = []
    for group in groups.order_by("name"):
        if group.size <= EXACT_COUNT_CAP:
            result.append(mark(group, exact=True))
        else:
            sql = f"SELECT 1 FROM {members} WHERE group_id = %s"  # noqa: S608 - model meta
            estimate = planner_rows(sql, [group.pk])
            group.size = max(estimate, group.size)
            result.append(mark(group, exact=False))
    return result


def group_size(group: Group) -> tuple[int, bool]:
    """(members, exact): counted up to EXACT_COUNT_CAP, PostgreSQL's estimate beyond."""
    members = Contact.groups.through.objects.filter(group=group).order_by()
    counted = len(members.values_list("pk", flat=True)[: EXACT_COUNT_CAP + 1])
    if counted <= EXACT_COUNT_CAP or connection.vendor != "postgresql":
        return (counted if counted <= EXACT_COUNT_CAP else members.count()), True
    table = Contact.groups.through._meta.db_table
    sql = f"SELECT 1 FROM {table} WHERE group_id = %s"  # noqa: S608 - model meta
    return max(planner_rows(sql, [group.pk]), counted), False


def mark(group: Group, *, exact: bool) -> Group:
    group.size_exact = exact  # type: ignore[attr-defined]
    return group


def planner_rows(sql: str, params: list[Any]) -> int:
    """How many rows PostgreSQL expects `sql` to return, from its statistics (no reading)."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def recent_imports() -> list[ImportJob]:
    fields = ["id", "kind", "original_name", "status", "created_at", "error_report"]
    fields += ["imported", "updated", "unchanged", "duplicates", "invalid"]
    return list(ImportJob.objects.only(*fields).order_by("-created_at")[:RECENT_IMPORTS])


@login_required
def contacts(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    if not can_see_contacts(request.user):
        raise PermissionDenied
    context = {
        "title": "Contacts",
        "nav": "contacts",
        "groups": groups_with_sizes(),
        "total": contact_total(),
        "imports": recent_imports() if can_see_imports(request.user) else None,
        "opt_outs": OptOut.objects.count(),
        "may_import": request.user.has_perm("contacts.add_importjob"),
        "may_edit": request.user.has_perm("contacts.change_contact"),
    }
    return render(request, "dashboard/contacts.html", context)


urlpatterns = [
    path("contacts/", contacts, name="contacts"),
]
