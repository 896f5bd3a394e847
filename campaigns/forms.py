"""Forms of a campaign, used by the admin and the dashboard alike: the campaign itself (its
schedule read in the campaign's own time zone), a test send and the test numbers it may go
to, a staff action's reason, and a segment with its rules as text."""

import copy
import zoneinfo
from datetime import UTC, datetime
from typing import Any, cast

from django import forms
from django.contrib.admin.widgets import AdminSplitDateTime
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.actions import Action
from campaigns.frequency import house_cap, may_override
from campaigns.models import AUDIENCE_FIELDS, Campaign, FrequencyCap, TestNumber
from campaigns.segments import RuleError, Segment, parse_rules
from campaigns.variants import parse_split


class LocalDateTimeField(forms.SplitDateTimeField):
    """A date and a time as typed, left naive: the form reads them in the campaign's zone."""

    def compress(self, data_list: Any) -> datetime | None:
        if not data_list:
            return None
        day, time = data_list
        if day in self.empty_values:
            raise ValidationError(self.error_messages["invalid_date"], code="invalid_date")
        if time in self.empty_values:
            raise ValidationError(self.error_messages["invalid_time"], code="invalid_time")
        return datetime.combine(day, time)


def in_zone(local: datetime, zone_name: str) -> datetime:
    """Wall-clock `local` in `zone_name`, as aware UTC; refused when a clock change skips
    that time or passes it twice, rather than guessing which one was meant."""
    aware = local.replace(tzinfo=zoneinfo.ZoneInfo(zone_name))
    if aware.utcoffset() != aware.replace(fold=1).utcoffset():
        raise ValidationError(
            "%(time)s happens twice or not at all in %(zone)s (the clocks change): "
            "pick another time.",
            code="ambiguous_time",
            params={"time": local.strftime("%Y-%m-%d %H:%M"), "zone": zone_name},
        )
    return aware.astimezone(UTC)


class VariantTexts(forms.MultiWidget):
    """The texts of variants B, C and D, a box each."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        boxes = [
            forms.Textarea(attrs={"rows": 3, "cols": 60, "aria-label": f"Variant {label}"})
            for label in "BCD"
        ]
        super().__init__(boxes, attrs)

    def decompress(self, value: Any) -> list[str]:
        texts = list(value or [])
        return [*texts, "", "", ""][:3]


class VariantTextsField(forms.MultiValueField):
    """B, C and D as typed, kept as the list of those given (A is the campaign's body)."""

    widget = VariantTexts

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("encoder", None)
        kwargs.pop("decoder", None)
        kwargs.pop("max_length", None)
        fields = [forms.CharField(required=False, strip=False) for _ in "BCD"]
        super().__init__(fields, require_all_fields=False, required=False, **kwargs)

    def compress(self, data_list: Any) -> list[str]:
        texts = [text for text in (data_list or []) if text and text.strip()]
        return [text.replace("\r\n", "\n") for text in texts]

    def has_changed(self, initial: Any, data: Any) -> bool:
        return list(initial or []) != self.compress(data)


class SplitField(forms.CharField):
    """ "50,50": each variant's share in percent, A first; empty for equal shares."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return ",".join(str(part) for part in value)
        return value

    def to_python(self, value: Any) -> list[int]:  # type: ignore[override]
        text = super().to_python(value)
        if isinstance(text, list):
            return text
        try:
            return parse_split(text or "")
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return list(initial or []) != self.to_python(data)
        except ValidationError:
            return True


class CampaignForm(forms.ModelForm):
    scheduled_at = LocalDateTimeField(required=False, widget=AdminSplitDateTime)
    variant_bodies = VariantTextsField(
        label="Other variants (A/B)",
        help_text="Texts of variants B, C and D for an A/B test; the message above is A. "
        "Leave them empty to send one text to everyone.",
    )
    ab_split = SplitField(
        label="Split (%)",
        required=False,
        help_text="Split: each variant's share in percent, A first (e.g. 50,50); empty "
        "for equal shares.",
    )
    time_zone = forms.ChoiceField(
        choices=[(name, name) for name in sorted(zoneinfo.available_timezones())],
        initial="Europe/London",
        help_text=Campaign._meta.get_field("time_zone").help_text,
    )

    #: Left out of a post altogether (a script, a page from before they existed), these
    #: keep their value, as Django already does for optional fields with a default.
    KEEP_IF_OMITTED = (
        "ab_mode",
        "ab_split",
        "ab_test_share",
        "ab_test_hours",
        "ab_winner_by",
        "time_zone",
        "brake_failure_rate",
        "brake_window",
        "frequency_cap",
        "cap_messages",
        "cap_days",
    )
    #: Set only by those who may override the house cap (campaigns.frequency.may_override).
    CAP_FIELDS = ("frequency_cap", "cap_messages", "cap_days")

    class Meta:
        model = Campaign
        fields = (
            "name",
            "channel",
            "provider_account",
            "sender",
            "template",
            "body",
            "track_links",
            "link_utm",
            "variant_bodies",
            "ab_mode",
            "ab_split",
            "ab_test_share",
            "ab_test_hours",
            "ab_winner_by",
            *AUDIENCE_FIELDS,
            "scheduled_at",
            "time_zone",
            "window_start",
            "window_end",
            "frequency_cap",
            "cap_messages",
            "cap_days",
            "brake_failure_rate",
            "brake_window",
        )

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        """With `user`, the cap fields are kept as saved unless they may override the cap
        (the admin makes them read-only instead)."""
        super().__init__(*args, **kwargs)
        zone = self.instance.time_zone
        if "scheduled_at" in self.fields:
            self.fields["scheduled_at"].help_text = (
                f"Local time in the campaign's time zone, below (now {zone}). "
                "Empty: send once approved."
            )
            if self.instance.scheduled_at:
                local = timezone.localtime(self.instance.scheduled_at, zoneinfo.ZoneInfo(zone))
                self.initial["scheduled_at"] = local.replace(tzinfo=None)
        if "frequency_cap" in self.fields:
            cast(forms.ChoiceField, self.fields["frequency_cap"]).choices = cap_choices()
        if user is not None and not may_override(user):
            for name in self.CAP_FIELDS:
                if name in self.fields:
                    # A disabled field takes the instance's value, whatever is posted.
                    self.fields[name].disabled = True
        if self.is_bound:
            self._keep_omitted_settings()

    @property
    def cap_editable(self) -> bool:
        return "frequency_cap" in self.fields and not self.fields["frequency_cap"].disabled

    def _keep_omitted_settings(self) -> None:
        omitted = [n for n in self.KEEP_IF_OMITTED if n in self.fields and n not in self.data]
        boxes = [f"variant_bodies_{i}" for i in range(3)]
        variants_omitted = "variant_bodies" in self.fields and not any(
            box in self.data for box in boxes
        )
        if omitted or variants_omitted:
            data: Any = copy.copy(self.data)  # a QueryDict's copy is a mutable one
            for name in omitted:
                value = self.fields[name].prepare_value(getattr(self.instance, name))
                data[name] = "" if value is None else str(value)
            if variants_omitted:
                texts = VariantTexts().decompress(self.instance.variant_bodies)
                for box, text in zip(boxes, texts, strict=True):
                    data[box] = text
            self.data = data

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        local = cleaned.get("scheduled_at")
        zone_name = cleaned.get("time_zone", self.instance.time_zone)
        if isinstance(local, datetime) and timezone.is_naive(local):
            try:
                cleaned["scheduled_at"] = in_zone(local, zone_name)
            except ValidationError as exc:
                self.add_error("scheduled_at", exc)
        return cleaned


def cap_choices() -> list[tuple[str, str]]:
    """The cap choices, the house setting's saying what it is now."""
    house = f"{FrequencyCap.HOUSE.label} ({house_cap() or 'off'})"
    return [
        (FrequencyCap.HOUSE, house),
        (FrequencyCap.OWN, FrequencyCap.OWN.label),
        (FrequencyCap.OFF, FrequencyCap.OFF.label),
    ]


class TestNumberChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj)


class TestSendForm(forms.Form):
    """A choice of the user's own test numbers: no number can be typed in."""

    __test__ = False  # a form, not a test class for pytest to collect

    number = TestNumberChoice(
        queryset=TestNumber.objects.none(),
        label="Send to",
        empty_label=None,
        widget=forms.RadioSelect,
        help_text="Your own test numbers; other staff add them (the admin's Test numbers page).",
        error_messages={"invalid_choice": "Choose one of your own test numbers."},
    )

    def __init__(
        self, *args: Any, user: Any, variants: list[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if variants:  # an A/B campaign: which of its variants to send
            self.fields["variant"] = forms.ChoiceField(
                choices=[(label, f"Variant {label}") for label in variants],
                initial=variants[0],
                widget=forms.RadioSelect,
                label="Variant",
            )
        numbers = TestNumber.objects.of(user)
        cast(forms.ModelChoiceField, self.fields["number"]).queryset = numbers
        self.has_numbers = numbers.exists()
        first = numbers.first()
        if first is not None and "number" not in self.initial:
            self.initial["number"] = first.pk


class TestNumberForm(forms.ModelForm):
    """The admin's test number: nobody but a superuser registers their own."""

    #: Who is adding or changing it (the admin sets it on its form class per request).
    added_by: Any = None

    class Meta:
        model = TestNumber
        fields = ("user", "phone", "label")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        staff = get_user_model()._default_manager.filter(is_staff=True, is_active=True)
        cast(forms.ModelChoiceField, self.fields["user"]).queryset = staff.order_by("username")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        owner = cleaned.get("user")
        if self.added_by is not None and owner is not None:
            try:
                TestNumber.check_adder(self.added_by, owner.pk)
            except ValidationError as exc:
                self.add_error(None, exc)
        return cleaned


class TransitionForm(forms.Form):
    """A staff action's confirmation: its reason (if it takes one), labelled and required
    as the action table says."""

    def __init__(self, *args: Any, action: Action, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if action.takes_reason:
            self.fields["note"] = forms.CharField(
                label=action.field_label,
                required=action.reason_required,
                error_messages={"required": action.reason_missing},
                widget=forms.Textarea(attrs={"rows": 3}),
            )


class RulesField(forms.CharField):
    """A segment's rules as a text box, one rule a line; cleaned into the canonical rules
    (segments.parse_rules), a bad one refused with the RuleError naming it."""

    widget = forms.Textarea(attrs={"rows": 6, "cols": 60, "spellcheck": "false"})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return "\n".join(str(line) for line in value)
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list | tuple):
            return [str(line) for line in value]
        return str(value or "").splitlines()

    def validate(self, value: Any) -> None:
        if self.required and not any(line.strip() for line in value):
            raise ValidationError("Give the segment at least one rule.", code="required")

    def clean(self, value: Any) -> list[str]:
        lines = self.to_python(value)
        self.validate(lines)
        try:
            return [str(rule) for rule in parse_rules(lines)]
        except RuleError as exc:
            raise ValidationError(str(exc), code="bad_rule") from None


class SegmentForm(forms.ModelForm):
    """A segment: its name, all or any, and its rules as text (the admin's form; the
    dashboard's builder fills `rules` from its rows)."""

    rules = RulesField(
        help_text="One rule a line, FIELD OP VALUE: attr.city = Leeds, country in GB,IE, "
        "group != Newsletter, attr.age >= 18, received any within 7."
    )

    class Meta:
        model = Segment
        fields = ("name", "match_any", "rules")

    def add_error(self, field: str | None, error: Any) -> None:
        # Segment.clean checks the rules again, and would repeat what the field said.
        if field is None and "rules" in self.errors and hasattr(error, "error_dict"):
            others = {name: e for name, e in error.error_dict.items() if name != "rules"}
            if not others:
                return
            error = ValidationError(others)
        super().add_error(field, error)
