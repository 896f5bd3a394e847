import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.admin import ReadOnlyAdmin, ReadOnlyInline
from messaging.backends import backend_class
from messaging.exceptions import ProviderError
from messaging.models import Message, ProviderAccount, StatusEvent, WebhookEvent, WorkerHeartbeat


class SecretTextarea(forms.Textarea):
    """Never writes a value back into the page, not even one just typed in."""

    def format_value(self, value: Any) -> str | None:
        return None


class ProviderAccountForm(forms.ModelForm):
    """Credentials are write-only: typed in, encrypted, and never shown back."""

    new_credentials = forms.CharField(
        required=False,
        widget=SecretTextarea(attrs={"rows": 3, "autocomplete": "off"}),
        help_text='JSON object, e.g. {"api_key": "...", "api_secret": "..."} (BulkSMSRates; '
        'also webhook_secret), {"username": ..., "password": ...} (Buzzbip), '
        '{"api_token": "..."} (Bwatmesaj). Given keys replace the stored ones, null '
        "removes one. Stored encrypted and never displayed; leave empty to keep them all.",
        label="Credentials",
    )
    base_url = forms.URLField(
        required=False, assume_scheme="https", help_text="Leave empty for the provider's own."
    )

    class Meta:
        model = ProviderAccount
        fields = (
            "name",
            "backend",
            "base_url",
            "sender",
            "rate_limit",
            "price_per_segment",
            "currency",
            "options",
            "is_active",
        )

    def clean_new_credentials(self) -> dict[str, Any] | None:
        text = self.cleaned_data["new_credentials"].strip()
        if not text:
            return None
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg}.") from exc
        if not isinstance(values, dict):
            raise forms.ValidationError("Give a JSON object of names to values.")
        return values

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("backend")
        if not kind:
            return cleaned
        backend = backend_class(kind)
        values = cleaned.get("new_credentials")
        unknown = sorted(set(values or {}) - set(backend.credential_keys))
        if unknown:
            allowed = ", ".join(backend.credential_keys) or "none"
            self.add_error(
                "new_credentials",
                f"Unknown credential {', '.join(unknown)} for {kind}; it takes: {allowed}.",
            )
        problem = backend.validate_sender(cleaned.get("sender") or "")
        if cleaned.get("sender") and problem:
            self.add_error("sender", problem)
        return cleaned

    def save(self, commit: bool = True) -> ProviderAccount:
        new = self.cleaned_data.get("new_credentials")
        if new is not None:
            # Given keys replace stored ones, null removes one, the rest are kept.
            merged = {**(self.instance.credentials if self.instance.has_credentials else {}), **new}
            self.instance.set_credentials({k: v for k, v in merged.items() if v is not None})
        return super().save(commit)


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):
    form = ProviderAccountForm
    list_display = (
        "name",
        "backend",
        "sender",
        "rate_limit",
        "has_credentials",
        "is_active",
        "balance_low",
    )
    list_filter = ("backend", "is_active")
    search_fields = ("name",)
    #: Kept by the engine and the gateway's webhook (campaigns.balance), shown for reference.
    readonly_fields = (
        "balance_available",
        "balance_checked_at",
        "balance_low_at",
        "balance_low_reason",
    )

    actions = ("check_connection",)

    @admin.action(description="Check the connection (log in, read the balance)")
    def check_connection(self, request: HttpRequest, queryset: Any) -> None:
        for account in queryset:
            try:
                summary = account.get_backend().check()
            except ProviderError as exc:
                self.message_user(request, f"{account.name}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{account.name}: OK - {summary}", messages.SUCCESS)

    @admin.display(boolean=True, description="balance low")
    def balance_low(self, account: ProviderAccount) -> bool:
        return account.balance_low_at is not None

    @admin.display(boolean=True, description="credentials set")
    def has_credentials(self, account: ProviderAccount) -> bool:
        return account.has_credentials


class StatusEventInline(ReadOnlyInline):
    model = StatusEvent
    fields = ("status", "error_code", "occurred_at", "received_at", "event_id", "raw")


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = (
        "client_ref",
        "phone",
        "status",
        "campaign",
        "is_test",
        "segments",
        "attempts",
        "sent_at",
    )
    list_filter = ("status", "is_test", "channel", "provider_account")
    list_select_related = ("campaign",)
    search_fields = ("=phone", "=client_ref", "=provider_message_id")
    inlines = (StatusEventInline,)
    show_full_result_count = False
    actions = ("mark_sent", "send_again")

    @admin.action(description="In doubt: mark as sent", permissions=("decide",))
    def mark_sent(self, request: HttpRequest, queryset: Any) -> None:
        self._decide(request, queryset, "mark_sent", "marked as sent")

    @admin.action(description="In doubt: send again", permissions=("decide",))
    def send_again(self, request: HttpRequest, queryset: Any) -> None:
        self._decide(request, queryset, "send_again", "queued to be sent again")

    def _decide(self, request: HttpRequest, queryset: Any, decision: str, done: str) -> None:
        chosen = queryset.filter(status=Message.Status.IN_DOUBT).count()
        moved = queryset.decide_in_doubt(decision, by=request.user)
        self.message_user(request, f"{moved} of {chosen} messages in doubt {done}.")
        if moved < chosen:
            self.message_user(
                request,
                f"{chosen - moved} not sent again: their campaign has finished (mark them "
                "as sent, or leave them in doubt).",
                messages.WARNING,
            )

    def has_decide_permission(self, request: HttpRequest) -> bool:
        """Marketers (and superusers) decide on messages in doubt."""
        return bool(request.user.has_perm("messaging.decide_in_doubt"))


@admin.register(StatusEvent)
class StatusEventAdmin(ReadOnlyAdmin):
    list_display = ("message", "status", "error_code", "occurred_at", "received_at")
    list_filter = ("status",)
    list_select_related = ("message",)
    search_fields = ("=message__client_ref", "=event_id")
    show_full_result_count = False


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("name", "seen_at")


class AppliedFilter(admin.SimpleListFilter):
    title = "applied"
    parameter_name = "applied"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Waiting for a worker"), ("yes", "Applied")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("no", "yes"):
            return queryset.filter(applied_at__isnull=self.value() == "no")
        return queryset


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = (
        "webhook_id",
        "event",
        "provider_account",
        "outcome",
        "received_at",
        "applied_at",
    )
    list_filter = (AppliedFilter, "provider_account", "event")
    list_select_related = ("provider_account",)
    search_fields = ("=webhook_id", "=event_id")
    show_full_result_count = False


from messaging import admin_replies  # noqa: E402, F401 - replies and keywords
