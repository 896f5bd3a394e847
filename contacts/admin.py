from typing import Any

from django.contrib import admin
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.http import HttpRequest

from contacts.models import Channel, Contact, Group, OptOut, Tag


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ("name", "contact_count", "created_at")
    search_fields = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Group]:
        return super().get_queryset(request).annotate(contact_count=Count("contacts"))

    @admin.display(description="contacts", ordering="contact_count")
    def contact_count(self, group: Any) -> int:
        return group.contact_count


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "contact_count")
    search_fields = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return super().get_queryset(request).annotate(contact_count=Count("contacts"))

    @admin.display(description="contacts", ordering="contact_count")
    def contact_count(self, tag: Any) -> int:
        return tag.contact_count


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("phone", "first_name", "last_name", "email", "opted_out_sms", "created_at")
    list_filter = ("groups", "tags")
    search_fields = ("=phone", "first_name", "last_name", "email")
    filter_horizontal = ("groups", "tags")
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("phone", "first_name", "last_name", "email")}),
        ("Segments", {"fields": ("groups", "tags")}),
        ("Details", {"fields": ("language", "timezone", "attributes")}),
        ("Consent", {"fields": ("consent_source", "consent_at", "created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Contact]:
        suppressed = OptOut.objects.filter(phone=OuterRef("phone"), channel=Channel.SMS)
        return super().get_queryset(request).annotate(is_opted_out_sms=Exists(suppressed))

    @admin.display(description="opted out (SMS)", boolean=True, ordering="is_opted_out_sms")
    def opted_out_sms(self, contact: Any) -> bool:
        return contact.is_opted_out_sms


@admin.register(OptOut)
class OptOutAdmin(admin.ModelAdmin):
    list_display = ("phone", "channel", "source", "note", "created_at")
    list_filter = ("channel", "source")
    search_fields = ("=phone",)
    readonly_fields = ("created_at",)
