"""Dashboard pages: a group (its size and members; add or remove by search or by a list of
numbers), and the custom attributes contacts carry."""

from __future__ import annotations

import io
import itertools

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from contacts import facets, memberships
from contacts.models import Contact, Group
from contacts.search import search_contacts
from contacts.uploads import capped_uploads, refuse_oversized
from dashboard.access import can_see_contacts
from dashboard.contacts_overview import group_size

MEMBERS_PER_PAGE = 50
MOST_FOUND = 20
CHANGE = "contacts.change_contact"


class NumberListForm(forms.Form):
    numbers = forms.FileField(
        label="A list of numbers",
        help_text="Text or CSV, one number a line (the first column); at most "
        f"{memberships.MOST_NUMBERS:,} numbers. A bigger list is an import.",
    )
    change = forms.ChoiceField(choices=[("add", "Add them"), ("remove", "Take them out")])

    def clean_numbers(self) -> object:
        upload = self.cleaned_data["numbers"]
        refuse_oversized(upload)
        return upload


def _check_viewer(request: HttpRequest) -> None:
    if not can_see_contacts(request.user):
        raise PermissionDenied


def _check_changer(request: HttpRequest) -> None:
    if not (can_see_contacts(request.user) and request.user.has_perm(CHANGE)):
        raise PermissionDenied


@login_required
def group_page(request: HttpRequest, pk: int) -> HttpResponse:
    _check_viewer(request)
    group = get_object_or_404(Group, pk=pk)
    members = Contact.objects.filter(
        pk__in=Contact.groups.through.objects.filter(group=group).values("contact_id")
    ).order_by("-pk")
    query = request.GET.get("q", "").strip()[:100]
    found = []
    if query:
        found = list(search_contacts(Contact.objects.all(), query).order_by("-pk")[:MOST_FOUND])
        member_ids = set(
            Contact.groups.through.objects.filter(
                group=group, contact_id__in=[c.pk for c in found]
            ).values_list("contact_id", flat=True)
        )
        for contact in found:
            contact.is_member = contact.pk in member_ids  # type: ignore[attr-defined]
    size, exact = group_size(group)
    context = {
        "title": f"Group: {group.name}",
        "nav": "contacts",
        "group": group,
        "size": size,
        "size_exact": exact,
        "page": Paginator(
            members.only("id", "phone", "first_name", "last_name"), MEMBERS_PER_PAGE
        ).get_page(request.GET.get("page")),
        "query": query,
        "found": found,
        "may_change": request.user.has_perm(CHANGE),
        "upload_form": NumberListForm(),
    }
    return render(request, "dashboard/group.html", context)


@login_required
@require_POST
def group_members(request: HttpRequest, pk: int) -> HttpResponse:
    """Add or take out the contacts ticked on the group's page."""
    _check_changer(request)
    group = get_object_or_404(Group, pk=pk)
    ids = [int(v) for v in request.POST.getlist("contact") if v.isdigit()]
    if request.POST.get("change") == "remove":
        removed = memberships.remove_from_group(group, ids)
        messages.success(request, f"{removed} contact{'s'[: removed != 1]} taken out of {group}.")
    else:
        existing = list(Contact.objects.filter(pk__in=ids).values_list("pk", flat=True))
        added = memberships.add_to_group(group, existing)
        messages.success(request, f"{added} contact{'s'[: added != 1]} added to {group}.")
    return redirect("dashboard:group", group.pk)


@login_required
@require_POST
def group_upload(request: HttpRequest, pk: int) -> HttpResponse:
    """A list of numbers: each that is a contact is added (or taken out); the rest are named."""
    _check_changer(request)
    group = get_object_or_404(Group, pk=pk)
    form = NumberListForm(request.POST, request.FILES)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect("dashboard:group", group.pk)
    text = io.TextIOWrapper(
        form.cleaned_data["numbers"].file, encoding="utf-8-sig", errors="replace"
    )
    # One line more than the most numbers allowed, and a header line besides.
    lines = list(itertools.islice(text, memberships.MOST_NUMBERS + 2))
    numbers = memberships.read_numbers(lines)
    read = len(numbers.phones) + len(numbers.rejected)
    if len(lines) > memberships.MOST_NUMBERS + 1 or read > memberships.MOST_NUMBERS:
        messages.error(
            request, f"More than {memberships.MOST_NUMBERS:,} numbers: import them instead."
        )
        return redirect("dashboard:group", group.pk)
    found = memberships.contacts_with(numbers.phones)
    removing = form.cleaned_data["change"] == "remove"
    if removing:
        changed = memberships.remove_from_group(group, found.values())
        summary = f"{changed} taken out of {group}"
    else:
        changed = memberships.add_to_group(group, found.values())
        summary = f"{changed} added to {group}, {len(found) - changed} already in it"
    unknown = len(numbers.phones) - len(found)
    messages.success(
        request,
        f"{len(numbers.phones)} number{'s'[: len(numbers.phones) != 1]} read: {summary}; "
        f"{unknown} not a contact.",
    )
    for line, why in numbers.rejected[:10]:
        messages.warning(request, f"Line {line} is no number: {why}.")
    if len(numbers.rejected) > 10:
        messages.warning(
            request, f"…and {len(numbers.rejected) - 10} more lines that are no number."
        )
    return redirect("dashboard:group", group.pk)


@login_required
def attribute_facets(request: HttpRequest) -> HttpResponse:
    _check_viewer(request)
    context = {
        "title": "Contact attributes",
        "nav": "contacts",
        "facets": facets.attribute_facets(),
        "fresh_minutes": facets.FRESH_SECONDS // 60,
    }
    return render(request, "dashboard/contact_attributes.html", context)


urlpatterns = [
    path("contacts/groups/<int:pk>/", group_page, name="group"),
    path("contacts/groups/<int:pk>/members/", group_members, name="group_members"),
    path("contacts/groups/<int:pk>/upload/", capped_uploads(group_upload), name="group_upload"),
    path("contacts/attributes/", attribute_facets, name="contact_attributes"),
]
