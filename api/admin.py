from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from api import tokens
from api.models import (
    ApiToken,
    Scope,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryQuerySet,
    WebhookSubscription,
    may_manage_webhooks,
)
from api.outgoing import delivery
from audit.admin import ReadOnlyAdmin, ReadOnlyInline


class TokenStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        live = Q(revoked_at__isnull=True)
        if self.value() == "active":
            return queryset.filter(live, Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(live, expires_at__lte=now)
        return queryset


class TokenScopeFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(scope, scope) for scope in Scope.values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in Scope.values:
            # The list as JSON text, quoted: one scope's name is no other's part (SQLite
            # has no JSON containment lookup).
            return queryset.filter(scopes__icontains=f'"{self.value()}"')
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Tokens are made in the dashboard or with `manage.py api token create`, where their
    text is shown once; here they are looked at and revoked, never shown or changed."""

    list_display = (
        "name",
        "shown",
        "user",
        "scope_list",
        "state",
        "expires_at",
        "last_used_at",
        "created_at",
    )
    list_filter = (TokenStateFilter, TokenScopeFilter, "created_at")
    list_select_related = ("user",)
    search_fields = ("name", "=key_id", "user__username")
    fields = (
        "name",
        "shown",
        "user",
        "scope_list",
        "state",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "created_at",
        "created_by",
    )
    readonly_fields = fields
    actions = ("revoke_selected",)

    @admin.display(description="token")
    def shown(self, token: ApiToken) -> str:
        return token.shown

    @admin.display(description="scopes")
    def scope_list(self, token: ApiToken) -> str:
        return ", ".join(token.scopes)

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        return token.state

    @admin.action(description="Revoke selected tokens", permissions=("revoke",))
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        chosen = list(queryset.select_related("user"))
        revoked = sum(tokens.revoke(token, by=request.user, door="admin") for token in chosen)
        self.message_user(request, f"Revoked {revoked} of {len(chosen)} selected tokens.")
        if revoked < len(chosen):
            self.message_user(
                request, f"{len(chosen) - revoked} were revoked already.", messages.WARNING
            )

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("api.change_apitoken"))


# Outgoing webhooks: made in the dashboard (where the secret is shown once); here looked at,
# changed, turned back on and deleted, and their deliveries read and sent again. Only for
# whoever may manage webhooks (api.manage_webhooks): the deliveries carry phone numbers.


class WebhookAccess:
    """The model's own permission, and api.manage_webhooks too."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_manage_webhooks(request.user) and super().has_module_permission(request)  # type: ignore[misc]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_manage_webhooks(request.user) and super().has_view_permission(request, obj)  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_manage_webhooks(request.user) and super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_manage_webhooks(request.user) and super().has_delete_permission(request, obj)  # type: ignore[misc]


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(WebhookAccess, admin.ModelAdmin):
    list_display = ("__str__", "url", "event_list", "health", "last_success_at", "is_active")
    list_filter = ("is_active", "created_at")
    search_fields = ("description", "url")
    fields = (
        "url",
        "events",
        "description",
        "is_active",
        "health",
        "failing_since",
        "last_success_at",
        "last_failure_at",
        "disabled_at",
        "disabled_reason",
        "created_by",
        "created_at",
    )
    readonly_fields = (
        "health",
        "failing_since",
        "last_success_at",
        "last_failure_at",
        "disabled_at",
        "disabled_reason",
        "created_by",
        "created_at",
    )
    actions = ("enable_selected",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the dashboard makes them, showing the secret once

    @admin.display(description="events")
    def event_list(self, subscription: WebhookSubscription) -> str:
        return ", ".join(subscription.events)

    @admin.display(description="health")
    def health(self, subscription: WebhookSubscription) -> str:
        return subscription.health

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        obj.audit("changed", request.user)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        obj.audit("deleted", request.user)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for subscription in queryset:
            subscription.audit("deleted", request.user)
        super().delete_queryset(request, queryset)

    @admin.action(description="Turn selected webhooks (back) on", permissions=("change",))
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        turned = 0
        for subscription in queryset:
            if subscription.enable():
                subscription.audit("enabled", request.user)
                turned += 1
        self.message_user(request, f"Turned on {turned} of {queryset.count()} selected webhooks.")


class WebhookAttemptInline(ReadOnlyInline):
    model = WebhookAttempt
    fields = ("attempted_at", "response_code", "response_excerpt", "error", "duration_ms")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(WebhookAccess, ReadOnlyAdmin):
    list_display = (
        "event_type",
        "event_id",
        "subscription",
        "status",
        "attempts",
        "last_response_code",
        "last_attempt_at",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("status", "event_type", "subscription", "created_at")
    list_select_related = ("subscription",)
    search_fields = ("=event_id",)
    fields = (
        "subscription",
        "event_type",
        "event_id",
        "status",
        "attempts",
        "first_attempt_at",
        "last_attempt_at",
        "last_response_code",
        "last_error",
        "next_attempt_at",
        "delivered_at",
        "created_at",
        "payload",
    )
    readonly_fields = fields
    inlines = (WebhookAttemptInline,)
    actions = ("send_again",)
    show_full_result_count = False  # a month of deliveries: no COUNT(*) of them all

    @admin.action(description="Send selected deliveries again", permissions=("send_again",))
    def send_again(self, request: HttpRequest, queryset: WebhookDeliveryQuerySet) -> None:
        again = delivery.send_again(queryset)
        self.message_user(request, f"Sending {again} deliveries again now.")

    def has_send_again_permission(self, request: HttpRequest) -> bool:
        return may_manage_webhooks(request.user)
