"""Dashboard pages: outgoing webhooks — subscriptions with their health, making one (its
secret shown once), changing, pausing, turning back on, rotating the secret and deleting;
the delivery log with each try's answer, and sending a delivery again.

Only whoever holds api.manage_webhooks (superusers, unless granted) sees any of it: the
deliveries carry phone numbers and reply texts out of Herald. A secret just made is kept
in the session only until the page the POST redirects to has shown it, never in a URL.
The rules (retries, turning off, claims) are the models'; these views only ask them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from api.models import EventType, WebhookDelivery, WebhookSubscription, may_manage_webhooks
from api.outgoing.delivery import send_again
from dashboard.webhook_forms import DeliveryFilterForm, SubscriptionForm

View = Callable[..., HttpResponse]

#: The session's key for a secret just made, until the subscription's page shows it.
JUST_MADE = "webhook_secret_just_made"
DELIVERIES_PER_PAGE = 50
D = WebhookDelivery.Status


def webhook_access(view: View) -> View:
    """Whoever may not manage webhooks is refused (403) every page of them."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not may_manage_webhooks(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return checked


@login_required
@webhook_access
def webhook_list(request: HttpRequest) -> HttpResponse:
    """Each subscription with its health and what waits for it, from one grouped query."""
    subscriptions = WebhookSubscription.objects.annotate(
        waiting=Count("deliveries", filter=Q(deliveries__status=D.PENDING)),
        given_up=Count("deliveries", filter=Q(deliveries__status=D.FAILED)),
    ).order_by("pk")
    context = {"title": "Webhooks", "nav": "webhooks", "subscriptions": subscriptions}
    return render(request, "dashboard/webhooks.html", context)


@login_required
@webhook_access
def webhook_new(request: HttpRequest) -> HttpResponse:
    form = SubscriptionForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        subscription, secret = WebhookSubscription.objects.create_with_secret(
            data["url"], data["events"], data["description"], request.user, data["is_active"]
        )
        subscription.audit("created", request.user)
        request.session[JUST_MADE] = {"id": subscription.pk, "secret": secret}
        return redirect("dashboard:webhook", subscription.pk)
    context = {"title": "New webhook", "nav": "webhooks", "form": form}
    return render(request, "dashboard/webhook_new.html", context)


@login_required
@webhook_access
def webhook_page(request: HttpRequest, pk: int) -> HttpResponse:
    """The subscription: its health, its secret once when just made, and its form."""
    subscription = get_object_or_404(WebhookSubscription, pk=pk)
    was_on = subscription.is_active
    form = SubscriptionForm(
        request.POST if request.method == "POST" else None, instance=subscription
    )
    if request.method == "POST" and form.is_valid():
        turning_on = form.cleaned_data["is_active"] and not was_on
        if turning_on:  # enable() turns it on: what waited goes now, its failures forgotten
            form.instance.is_active = False
        form.save()
        subscription.audit("changed", request.user)
        if turning_on:
            subscription.enable()
            subscription.audit("enabled", request.user)
        messages.success(request, f"Saved “{subscription}”.")
        return redirect("dashboard:webhook", subscription.pk)
    just_made = request.session.get(JUST_MADE)
    if just_made and just_made.get("id") == subscription.pk:
        request.session.pop(JUST_MADE)
    else:
        just_made = None
    recent = subscription.deliveries.order_by("-pk")[:10]
    context = {
        "title": f"Webhook: {subscription}",
        "nav": "webhooks",
        "subscription": subscription,
        "form": form,
        "just_made": just_made,
        "recent": recent,
        "log_url": reverse("dashboard:webhook_deliveries") + f"?subscription={subscription.pk}",
    }
    return render(request, "dashboard/webhook.html", context)


@login_required
@require_POST
@webhook_access
def webhook_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    subscription = get_object_or_404(WebhookSubscription, pk=pk)
    request.session[JUST_MADE] = {"id": subscription.pk, "secret": subscription.rotate_secret()}
    subscription.audit("secret_rotated", request.user)
    return redirect("dashboard:webhook", subscription.pk)


@login_required
@require_POST
@webhook_access
def webhook_enable(request: HttpRequest, pk: int) -> HttpResponse:
    subscription = get_object_or_404(WebhookSubscription, pk=pk)
    if subscription.enable():
        subscription.audit("enabled", request.user)
        messages.success(
            request, f"“{subscription}” is on again: what waited for it is being sent now."
        )
    else:
        messages.info(request, f"“{subscription}” was on already.")
    return redirect("dashboard:webhook", subscription.pk)


@login_required
@webhook_access
def webhook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks first; POST with the box ticked deletes it and its log."""
    subscription = get_object_or_404(WebhookSubscription, pk=pk)
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        name = str(subscription)
        subscription.audit("deleted", request.user)
        subscription.delete()
        messages.success(request, f"Deleted the webhook “{name}” and its delivery log.")
        return redirect("dashboard:webhooks")
    problem = "Tick the box to confirm." if request.method == "POST" else ""
    context = {
        "title": f"Delete webhook: {subscription}",
        "nav": "webhooks",
        "subscription": subscription,
        "problem": problem,
    }
    return render(request, "dashboard/webhook_delete.html", context)


@login_required
@webhook_access
def delivery_log(request: HttpRequest) -> HttpResponse:
    """Newest first, DELIVERIES_PER_PAGE at a time (older: before an id, no count of all)."""
    filters = DeliveryFilterForm(request.GET or None)
    rows = WebhookDelivery.objects.filter(**filters.conditions()).select_related("subscription")
    before = request.GET.get("before", "")
    if before.isdigit():
        rows = rows.filter(pk__lt=int(before))
    shown = list(rows.order_by("-pk")[: DELIVERIES_PER_PAGE + 1])
    older = None
    if len(shown) > DELIVERIES_PER_PAGE:
        shown = shown[:DELIVERIES_PER_PAGE]
        query = request.GET.copy()
        query["before"] = str(shown[-1].pk)
        older = "?" + query.urlencode()
    context = {
        "title": "Webhook deliveries",
        "nav": "webhooks",
        "filters": filters,
        "deliveries": shown,
        "older": older,
        "newest": "?" + _without(request, "before") if before else None,
    }
    return render(request, "dashboard/webhook_deliveries.html", context)


@login_required
@webhook_access
def delivery_page(request: HttpRequest, pk: int) -> HttpResponse:
    """One delivery: what it carries, and every try with its answer."""
    row = get_object_or_404(WebhookDelivery.objects.select_related("subscription"), pk=pk)
    context = {
        "title": f"Delivery of {row.event_type}",
        "nav": "webhooks",
        "delivery": row,
        "payload": _pretty(row.payload),
        "attempts": row.attempt_log.all(),
        "event_label": EventType(row.event_type).label,
    }
    return render(request, "dashboard/webhook_delivery.html", context)


@login_required
@require_POST
@webhook_access
def delivery_send_again(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(WebhookDelivery, pk=pk)
    send_again(WebhookDelivery.objects.filter(pk=row.pk))
    messages.success(request, "Sending it again now, with the same webhook-id.")
    return redirect("dashboard:webhook_delivery", row.pk)


def _pretty(payload: str) -> str:
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        return payload


def _without(request: HttpRequest, name: str) -> str:
    query = request.GET.copy()
    query.pop(name, None)
    return query.urlencode()


urlpatterns = [
    path("outgoing-webhooks/", webhook_list, name="webhooks"),
    path("outgoing-webhooks/new/", webhook_new, name="webhook_new"),
    path("outgoing-webhooks/<int:pk>/", webhook_page, name="webhook"),
    path("outgoing-webhooks/<int:pk>/rotate/", webhook_rotate, name="webhook_rotate"),
    path("outgoing-webhooks/<int:pk>/enable/", webhook_enable, name="webhook_enable"),
    path("outgoing-webhooks/<int:pk>/delete/", webhook_delete, name="webhook_delete"),
    path("outgoing-webhooks/deliveries/", delivery_log, name="webhook_deliveries"),
    path("outgoing-webhooks/deliveries/<int:pk>/", delivery_page, name="webhook_delivery"),
    path(
        "outgoing-webhooks/deliveries/<int:pk>/send-again/",
        delivery_send_again,
        name="webhook_send_again",
    ),
]
