"""The admin's pages for replies and the keywords they are matched against."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from audit.admin import ReadOnlyAdmin
from messaging.inbound import confirm_opt_out
from messaging.keywords import normalise
from messaging.models import InboundMessage, Keyword


class KeywordForm(forms.ModelForm):
    class Meta:
        model = Keyword
        fields = ("word", "language", "action", "reply", "is_active")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        word = cleaned.get("word") or ""
        key = normalise(word)
        if word and not key:
            self.add_error("word", "This word has no letters or digits left once punctuation goes.")
        clash = Keyword.objects.filter(normalised=key).exclude(pk=self.instance.pk).first()
        if key and clash is not None:
            self.add_error(
                "word", f"Matches the same replies as the keyword {clash} already: edit that one."
            )
        if cleaned.get("reply") and cleaned.get("action") != Keyword.Action.HELP:
            self.add_error("reply", "Only HELP keywords send an auto-reply.")
        return cleaned


@admin.register(Keyword)
class KeywordAdmin(admin.ModelAdmin):
    form = KeywordForm
    list_display = ("word", "language", "action", "is_active", "updated_at")
    list_filter = ("action", "language", "is_active")
    search_fields = ("word", "normalised")
    readonly_fields = ("normalised",)


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    list_display = (
        "pk",
        "received_at",
        "channel",
        "phone",
        "action",
        "possible_opt_out",
        "campaign",
        "handled_at",
    )
    list_filter = ("action", "possible_opt_out", "channel", "provider_account")
    list_select_related = ("campaign",)
    search_fields = ("=phone", "=provider_message_id")
    raw_id_fields = ("contact", "campaign", "answers", "opt_out", "auto_reply")
    show_full_result_count = False
    actions = ("confirm_opt_outs",)

    @admin.action(
        description="Possible opt-outs: confirm (opt the numbers out)", permissions=("reply",)
    )
    def confirm_opt_outs(self, request: HttpRequest, queryset: Any) -> None:
        chosen = list(queryset.filter(possible_opt_out=True))
        done = sum(confirm_opt_out(reply, by=request.user) for reply in chosen)
        self.message_user(request, f"{done} of {len(chosen)} possible opt-outs confirmed.")

    def has_reply_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("messaging.reply_inbound"))
