"""Dashboard pages: contact search, a contact's page (opt-outs, messages), and erasing one.

Views are thin callers: the search is contacts.search's (the admin's too), an erasure is
contacts.erasure's. Each change needs the model permission the admin asks for the same.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from audit.models import AuditEvent
from contacts.erasure import erase
from contacts.models import Channel, Contact, OptOut
from contacts.phones import redact
from contacts.search import search_contacts
from dashboard.access import can_see_contacts
from messaging.models import Message

#: Search answers at most this many contacts, newest first: a search is for finding one.
MOST_RESULTS = 50
MESSAGES_PER_PAGE = 25


def _check_viewer(request: HttpRequest) -> None:
    if not can_see_contacts(request.user):
        raise PermissionDenied


def _check_perm(request: HttpRequest, permission: str) -> None:
    if not (can_see_contacts(request.user) and request.user.has_perm(permission)):
        raise PermissionDenied


@login_required
def contact_search(request: HttpRequest) -> HttpResponse:
    _check_viewer(request)
    query = request.GET.get("q", "").strip()[:100]
    found: list[Contact] = []
    if query:
        contacts = search_contacts(Contact.objects.all(), query).order_by("-pk")
        found = list(
            contacts.only("id", "phone", "first_name", "last_name", "email")[: MOST_RESULTS + 1]
        )
    context = {
        "title": "Find a contact",
        "nav": "contacts",
        "query": query,
        "contacts": found[:MOST_RESULTS],
        "more": len(found) > MOST_RESULTS,
        "most": MOST_RESULTS,
    }
    return render(request, "dashboard/contact_search.html", context)


@login_required
def contact_page(request: HttpRequest, pk: int) -> HttpResponse:
    _check_viewer(request)
    contact = get_object_or_404(Contact, pk=pk)
    opt_outs = list(OptOut.objects.filter(phone=contact.phone).order_by("channel"))
    opted = {o.channel for o in opt_outs}
    user = request.user
    context = {
        "title": str(contact),
        "nav": "contacts",
        "contact": contact,
        "attributes": sorted(contact.attributes.items()),
        "groups": list(contact.groups.order_by("name")),
        "tags": list(contact.tags.order_by("name")),
        "opt_outs": opt_outs,
        "channels_open": [c for c in Channel if c.value not in opted],
        "page": Paginator(_messages_of(contact), MESSAGES_PER_PAGE).get_page(
            request.GET.get("page")
        ),
        "may_add_opt_out": user.has_perm("contacts.add_optout"),
        "may_remove_opt_out": user.has_perm("contacts.delete_optout"),
        "may_erase": user.has_perm("contacts.delete_contact"),
    }
    return render(request, "dashboard/contact.html", context)


def _messages_of(contact: Contact) -> Any:
    """Newest first, by the message_contact_created index; test sends name no contact."""
    fields = ("id", "created_at", "channel", "status", "skip_reason", "error_message")
    return (
        Message.objects.filter(contact=contact)
        .select_related("campaign")
        .only(*fields, "campaign__id", "campaign__name")
        .order_by("-created_at", "-pk")
    )


@login_required
@require_POST
def contact_opt_out(request: HttpRequest, pk: int) -> HttpResponse:
    """Add (source: staff) or remove one opt-out of the contact's number; audited either way."""
    removing = request.POST.get("change") == "remove"
    _check_perm(request, "contacts.delete_optout" if removing else "contacts.add_optout")
    contact = get_object_or_404(Contact, pk=pk)
    channel = request.POST.get("channel", "")
    if channel not in Channel.values:
        messages.error(request, "Choose a channel: SMS or WhatsApp.")
        return redirect("dashboard:contact", contact.pk)
    label = Channel(channel).label
    if removing:
        changed = OptOut.objects.filter(phone=contact.phone, channel=channel).delete()[0] > 0
        done = f"Opt-out of {label} removed: {contact} may be messaged on {label} again."
    else:
        changed = OptOut.objects.add_by_staff(contact.phone, channel)
        done = f"Opt-out of {label} added: {contact} will not be messaged on {label}."
    if changed:
        action = AuditEvent.Action.OPT_OUT_REMOVED if removing else AuditEvent.Action.OPT_OUT_ADDED
        detail = {"channel": channel, "phone": redact(contact.phone)}
        AuditEvent.record(action, actor=request.user, obj=contact, detail=detail)
        messages.success(request, done)
    else:
        state = "had no" if removing else "already had an"
        messages.info(request, f"Nothing changed: the number {state} opt-out of {label}.")
    return redirect("dashboard:contact", contact.pk)


@login_required
def contact_erase(request: HttpRequest, pk: int) -> HttpResponse:
    """Asks first; then erases the contact and every copy of its number, for good (GDPR)."""
    _check_perm(request, "contacts.delete_contact")
    contact = get_object_or_404(Contact, pk=pk)
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        changed = erase(contact_ids=[contact.pk])
        figures = ", ".join(f"{n} {kind}" for kind, n in sorted(changed.items()))
        messages.success(request, f"Contact erased for good: {figures}.")
        return redirect("dashboard:contacts")
    context = {
        "title": "Erase this contact for good?",
        "nav": "contacts",
        "contact": contact,
        "redacted": redact(contact.phone),
        "problem": "Tick the box to confirm." if request.method == "POST" else "",
    }
    return render(request, "dashboard/contact_erase.html", context)


urlpatterns = [
    path("contacts/search/", contact_search, name="contact_search"),
    path("contacts/<int:pk>/", contact_page, name="contact"),
    path("contacts/<int:pk>/opt-outs/", contact_opt_out, name="contact_opt_out"),
    path("contacts/<int:pk>/erase/", contact_erase, name="contact_erase"),
]
