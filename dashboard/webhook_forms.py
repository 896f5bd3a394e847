"""The outgoing webhooks pages' forms: a subscription's URL, events, description and state,
and the delivery log's filters."""

from __future__ import annotations

from typing import Any

from django import forms

from api.models import EventType, WebhookDelivery, WebhookSubscription


class SubscriptionForm(forms.ModelForm):
    """What staff set of a subscription; its secret is Herald's to make (shown once)."""

    url = forms.URLField(
        label="URL",
        max_length=500,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"size": 60, "placeholder": "https://"}),
        help_text="Where each event is POSTed, signed (http:// or https://; redirects are "
        "not followed).",
    )
    events = forms.MultipleChoiceField(
        label="Events",
        choices=[(kind.value, f"{kind.value}: {kind.label}") for kind in EventType],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Tick at least one event."},
        help_text="Each delivery carries the event's data, phone numbers and reply texts "
        "included: send them only to a system you trust with them.",
    )

    class Meta:
        model = WebhookSubscription
        fields = ("url", "events", "description", "is_active")
        help_texts = {
            "description": "Whose system it is, e.g. the CRM: it names the webhook in lists.",
            "is_active": "Untick to pause it: nothing is recorded for it while paused.",
        }


#: The log's "answer" filter: its name and how it narrows the deliveries.
ANSWERS = {
    "2xx": {"last_response_code__gte": 200, "last_response_code__lt": 300},
    "4xx": {"last_response_code__gte": 400, "last_response_code__lt": 500},
    "5xx": {"last_response_code__gte": 500},
    "none": {"last_response_code__isnull": True, "attempts__gt": 0},
}


class DeliveryFilterForm(forms.Form):
    subscription = forms.ModelChoiceField(
        queryset=WebhookSubscription.objects.all(), required=False, empty_label="Any"
    )
    status = forms.ChoiceField(
        choices=[("", "Any"), *WebhookDelivery.Status.choices], required=False
    )
    event_type = forms.ChoiceField(
        label="Event", choices=[("", "Any"), *EventType.choices], required=False
    )
    answer = forms.ChoiceField(
        label="Last answer",
        choices=[
            ("", "Any"),
            ("2xx", "2xx (delivered)"),
            ("4xx", "4xx"),
            ("5xx", "5xx"),
            ("none", "No answer (connection failed)"),
        ],
        required=False,
    )

    def conditions(self) -> dict[str, Any]:
        """The filters chosen, as queryset lookups (none for a form that is not valid)."""
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        found: dict[str, Any] = {}
        if data["subscription"]:
            found["subscription"] = data["subscription"]
        if data["status"]:
            found["status"] = data["status"]
        if data["event_type"]:
            found["event_type"] = data["event_type"]
        found.update(ANSWERS.get(data["answer"], {}))
        return found
