"""Forms of the dashboard's campaign builder and test send."""

from typing import Any

from django import forms
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from campaigns.forms import CampaignForm, TestSendForm

__all__ = ["BuilderForm", "TestSendForm"]


class LabelledSplitDateTimeWidget(forms.SplitDateTimeWidget):
    """A date and a time input, each with a label of its own (the field's is a legend)."""

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        context = self.get_context(name, value, attrs)
        # The project's template engine: the form renderer does not search templates/.
        return mark_safe(render_to_string("dashboard/_builder_datetime.html", context))  # noqa: S308


class BuilderForm(CampaignForm):
    """The admin's campaign form (the schedule read in the campaign's zone), with plain
    HTML widgets instead of the admin's JavaScript ones."""

    class Meta(CampaignForm.Meta):
        widgets = {
            "body": forms.Textarea(attrs={"rows": 5, "cols": 60}),
            "groups": forms.CheckboxSelectMultiple,
            "tags": forms.CheckboxSelectMultiple,
            "segments": forms.CheckboxSelectMultiple,
            "exclude_groups": forms.CheckboxSelectMultiple,
            "exclude_tags": forms.CheckboxSelectMultiple,
            "exclude_segments": forms.CheckboxSelectMultiple,
            "frequency_cap": forms.RadioSelect,
            "ab_mode": forms.RadioSelect,
            "ab_winner_by": forms.RadioSelect,
            # Labelled by the sentence around them (builder.html): "at most N … in D days".
            "cap_messages": forms.NumberInput(
                attrs={"min": 1, "class": "short", "aria-label": "Its own cap: messages"}
            ),
            "cap_days": forms.NumberInput(
                attrs={"min": 1, "class": "short", "aria-label": "Its own cap: days"}
            ),
            "window_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "window_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "brake_failure_rate": forms.NumberInput(attrs={"step": "0.05", "min": 0, "max": 1}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["scheduled_at"].widget = LabelledSplitDateTimeWidget(
            date_attrs={"type": "date"},
            time_attrs={"type": "time"},
            date_format="%Y-%m-%d",
            time_format="%H:%M",
        )
        for name in ("cap_messages", "cap_days"):
            # The sentence around them says it ("at most N per contact in D days"): a help
            # text would be one more thing to read, and one no element shows.
            self.fields[name].help_text = ""
