"""Dashboard pages: the contacts overview, a read-only summary that links into the admin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from contacts.models import Contact, Group, ImportJob, OptOut
from dashboard.access import can_see_contacts

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
    """Every group with `size`, its number of members, in one aggregate query."""
    return list(Group.objects.annotate(size=Count("contacts")).only("id", "name").order_by("name"))


def recent_imports() -> list[ImportJob]:
    fields = ["id", "original_name", "status", "created_at", "error_report"]
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
        "imports": recent_imports(),
        "opt_outs": OptOut.objects.count(),
        "may_import": request.user.has_perm("contacts.add_importjob"),
        "may_edit": request.user.has_perm("contacts.change_contact"),
    }
    return render(request, "dashboard/contacts.html", context)


urlpatterns = [
    path("contacts/", contacts, name="contacts"),
]
