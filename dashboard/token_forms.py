"""The API tokens page's form: a name, the scopes the user's permissions give a use, and when
it expires."""

from __future__ import annotations

from typing import Any

from django import forms

from api import tokens
from api.models import Scope


class TokenForm(forms.Form):
    """A new token of `user`: only the scopes their permissions give some use are offered."""

    name = forms.CharField(
        label="Name",
        max_length=tokens.NAME_MAX_LENGTH,
        help_text="What it is for, e.g. the shop's checkout: it names the token in lists.",
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Tick at least one scope."},
    )
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        required=False,
        min_value=1,
        max_value=tokens.MAX_EXPIRY_DAYS,
        initial=tokens.DEFAULT_EXPIRY_DAYS,
        widget=forms.NumberInput(attrs={"class": "short"}),
    )
    never_expires = forms.BooleanField(
        label="Never expires",
        required=False,
        help_text="Only for an integration you watch: revoke it here when it is retired.",
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        offered = tokens.useful_scopes(user)
        field = self.fields["scopes"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [
            (scope.value, f"{scope.value}: {scope.label}") for scope in Scope if scope in offered
        ]
        left_out = [scope for scope in Scope.values if scope not in offered]
        if left_out:
            field.help_text = (
                f"Not offered: {', '.join(left_out)}. Your permissions in Herald give "
                "them no use, and a token can do no more than you can."
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("never_expires"):
            cleaned["expires_in_days"] = None
        elif not cleaned.get("expires_in_days") and "expires_in_days" not in self.errors:
            self.add_error("expires_in_days", "Give a number of days, or tick Never expires.")
        return cleaned
