"""The inbox's answer form: free text, or an approved WhatsApp template when the window is shut."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from campaigns.models import MessageTemplate
from contacts.models import Channel

#: Longest answer per channel: ten concatenated SMS of 160; WhatsApp's limit for a text body.
MOST_CHARS = {Channel.SMS: 1600, Channel.WHATSAPP: 4096}
#: A reply page's one-time token, as `secrets.token_urlsafe(16)` writes it.
FORM_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")


class ReplyForm(forms.Form):
    """What to answer `channel` with; `window_open` says whether WhatsApp takes free text now."""

    body = forms.CharField(
        label="Your answer",
        required=False,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
    )
    template = forms.ModelChoiceField(
        label="Approved WhatsApp template",
        queryset=MessageTemplate.objects.none(),
        required=False,
        empty_label="(none: free text)",
    )
    form_token = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(
        self,
        *args: Any,
        channel: str,
        window_open: bool,
        templates: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.channel, self.window_open = channel, window_open
        most = MOST_CHARS.get(Channel(channel), MOST_CHARS[Channel.SMS])
        self.fields["body"].widget.attrs["maxlength"] = most
        self.fields["body"].help_text = f"At most {most} characters."
        template = self.fields["template"]
        assert isinstance(template, forms.ModelChoiceField)
        if channel == Channel.WHATSAPP:
            template.queryset = templates
            if not window_open:
                template.empty_label = "Choose a template"
                template.help_text = (
                    "The customer's last WhatsApp message is more than 24 hours old: WhatsApp "
                    "takes only an approved template until they write again."
                )
        else:
            del self.fields["template"]

    def clean_form_token(self) -> str:
        token: str = self.cleaned_data.get("form_token", "")
        return token if FORM_TOKEN.fullmatch(token) else ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        body, template = cleaned.get("body", ""), cleaned.get("template")
        most = MOST_CHARS.get(Channel(self.channel), MOST_CHARS[Channel.SMS])
        if template is not None:
            return cleaned
        if self.channel == Channel.WHATSAPP and not self.window_open:
            self.add_error(
                "template",
                "The 24-hour WhatsApp window is shut: choose an approved template "
                "(free text is refused until the customer writes again).",
            )
        elif not body:
            self.add_error("body", "Write an answer first: it is empty.")
        elif len(body) > most:
            self.add_error(
                "body", f"The answer is {len(body)} characters long: at most {most} fit."
            )
        return cleaned
