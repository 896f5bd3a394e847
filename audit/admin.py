"""The audit log, read-only: superusers and holders of `audit.view_auditevent` (Auditors)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records of what happened: visible to staff, written only by Herald itself.

    Every app's logs use it (the audit trail, messages, delivery reports, campaign history).
    """

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """A record's own history under it (transitions, delivery reports): shown, never edited."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor_name", "action", "object_type", "object_id", "ip")
    list_filter = ("action", "object_type")
    search_fields = ("actor_name", "object_id", "ip")
    date_hierarchy = "at"
    list_select_related = ("actor",)
    fields = ("at", "actor", "actor_name", "action", "object_type", "object_id", "ip", "detail")
    readonly_fields = fields
