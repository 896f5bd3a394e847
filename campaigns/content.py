"""What a campaign sends: its text and WhatsApp parameters, rendered per recipient.

The preview, the test send and the build all render through `Content`, and each
rendering carries a fingerprint, so an approval can bind the exact texts its
preview saw (campaigns.approval) and the build can refuse any other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.utils.text import slugify

from contacts.models import Channel, Contact
from messaging.links import LinkPolicy, ShortenedMessage, find_urls, link_base, shorten_message
from messaging.rendering import fallbacks, parameter, placeholders, render

if TYPE_CHECKING:
    from campaigns.models import Campaign

#: Bytes of BLAKE2b kept per rendering: a collision by chance needs ~2^64 texts.
FINGERPRINT_BYTES = 16


@dataclass(frozen=True)
class Rendered:
    body: str
    parameters: tuple[str, ...]

    @property
    def fingerprint(self) -> bytes:
        return fingerprint(self.body, self.parameters)


def fingerprint(body: str, parameters: tuple[str, ...] | list[str] = ()) -> bytes:
    """A short digest of one rendering: its text and its ordered WhatsApp parameters."""
    payload = json.dumps([body, list(parameters)], ensure_ascii=False).encode()
    return hashlib.blake2b(payload, digest_size=FINGERPRINT_BYTES).digest()


@dataclass(frozen=True)
class Content:
    body: str
    whatsapp_template_id: str
    parameters: tuple[str, ...]  # contact fields ("city", "city|there"), in the template's order
    #: How its links go out; None: as written (HERALD_LINK_BASE unset, or the campaign's
    #: switch off).
    links: LinkPolicy | None = None

    @classmethod
    def of(cls, campaign: Campaign, variant: str = "A") -> Content:
        """What the campaign sends (its variant `variant` of an A/B test: A is its body)."""
        template = campaign.template if campaign.channel == Channel.WHATSAPP else None
        body = campaign.message_body
        if variant != "A":
            body = campaign.variant_bodies[ord(variant) - ord("B")]
        return cls(
            body=body,
            whatsapp_template_id=template.whatsapp_template_id if template else "",
            parameters=tuple(template.whatsapp_parameters) if template else (),
            links=link_policy(campaign),
        )

    @classmethod
    def reading(cls, campaign: Campaign) -> Content:
        """What the audience is read with: `of`, reading the variables of every A/B
        variant's text (each variant renders from the same values)."""
        content = cls.of(campaign)
        if not campaign.variant_bodies:
            return content
        return replace(content, body="\n".join([content.body, *campaign.variant_bodies]))

    @property
    def variables(self) -> list[str]:
        """Every field a rendering reads: the body's placeholders and the parameters'."""
        return list(dict.fromkeys(name for text in self._texts for name in placeholders(text)))

    @property
    def fallbacks(self) -> dict[str, str | None]:
        """{variable: what a recipient without it gets instead}; None where some use has none."""
        return fallbacks(*self._texts)

    @property
    def _texts(self) -> list[str]:
        """The body and each parameter as a placeholder, for the one parser to read."""
        return [self.body, *(parameter(spec) for spec in self.parameters)]

    @property
    def custom_variables(self) -> list[str]:
        return sorted(set(self.variables) - set(Contact.TEMPLATE_FIELDS))

    @property
    def columns(self) -> list[str]:
        """What `with_fields` selects, in the order `fields_of` reads it."""
        fixed = [name for name in Contact.TEMPLATE_FIELDS if name in self.variables]
        return [*fixed, *(f"attr_{name}" for name in self.custom_variables)]

    def with_fields(self, contacts: QuerySet[Contact]) -> QuerySet[Contact]:
        """`contacts` with each custom variable as a text column.

        Every rendering reads attributes through the database's own JSON-to-text, so the
        preview (grouped in SQL) and the build (row by row) see the very same strings.
        """
        return contacts.annotate(
            **{
                f"attr_{name}": KeyTextTransform(name, "attributes")
                for name in self.custom_variables
            }
        )

    def fields_of(self, values: Sequence[Any]) -> dict[str, str]:
        """{variable: text} from the `columns` values of one contact (None reads as empty)."""
        fields = {}
        for column, value in zip(self.columns, values, strict=True):
            fields[column.removeprefix("attr_")] = "" if value is None else str(value)
        return fields

    def render(self, fields: dict[str, str]) -> Rendered:
        parameters = tuple(render(parameter(spec), fields) for spec in self.parameters)
        return Rendered(render(self.body, fields), parameters)

    def shortened(self, rendered: Rendered) -> ShortenedMessage | None:
        """The rendered text and WhatsApp parameters with their URLs taken out, when they
        go as short links (None when links go as written, or neither has any)."""
        if self.links is None:
            return None
        texts = (rendered.body, *rendered.parameters)
        if not any(find_urls(text) for text in texts):
            return None
        return shorten_message(rendered.body, rendered.parameters)

    def sent_text(self, rendered: Rendered) -> str:
        """The text as a recipient gets it, short links standing in for the URLs (each
        recipient's own code in place of xxxxxxxx): what segments and cost are counted on."""
        return self.sent(rendered).body

    def sent(self, rendered: Rendered) -> Rendered:
        """The text and parameters as a recipient gets them (xxxxxxxx for each code)."""
        shortened = self.shortened(rendered)
        if shortened is None or self.links is None:
            return rendered
        return Rendered(*shortened.shape(self.links.base))

    def frozen(self) -> dict[str, Any]:
        """What the approval's content hash covers of the text itself (how links go out,
        only where the body has any or WhatsApp parameters may bring some, so other
        campaigns keep the hash they had)."""
        frozen: dict[str, Any] = {
            "body": self.body,
            "whatsapp_template": self.whatsapp_template_id,
            "whatsapp_parameters": list(self.parameters),
        }
        if self.links is not None and (find_urls(self.body) or self.parameters):
            frozen["links"] = [self.links.base, list(self.links.utm or ())]
        return frozen


def link_policy(campaign: Campaign) -> LinkPolicy | None:
    base = link_base()
    if not base or not campaign.track_links:
        return None
    utm = (campaign.channel, slugify(campaign.name)) if campaign.link_utm else None
    return LinkPolicy(base, utm)
