from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from api import tokens
from api.models import ApiToken, Scope
from audit.admin import ReadOnlyAdmin


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
