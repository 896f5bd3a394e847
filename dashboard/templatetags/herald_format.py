"""One way of showing money and moments on every page.

`{% load herald_format %}`, then `{{ amount|money:currency }}` ("1,234.50 GBP": the account's
currency, two decimals), `{{ moment|when }}` ("3 Dec 2026, 14:05 GMT", in the site's time
zone) and `{% when_time moment %}` (the same inside `<time datetime="ISO 8601">`). The words
are campaigns.presenters' (`money`, `when`), so the admin and messages read the same.
CSV and JSON carry ISO 8601 and plain decimals instead: they are read by programs.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django import template
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

from campaigns import presenters

register = template.Library()

#: A day without a time, as `when` shows dates ("3 Dec 2026").
DAY_FORMAT = "j M Y"


@register.filter
def money(amount: Decimal | str | None, currency: str = "") -> str:
    """An amount in `currency` with two decimals; "—" when there is none yet."""
    if amount is None or amount == "":
        return "—"
    return presenters.money(amount, currency or "")


@register.filter
def when(moment: datetime | date | None) -> str:
    """A moment in the site's time zone, its zone named; a bare date as a day; "" for none."""
    if moment is None or moment == "":
        return ""
    if isinstance(moment, datetime):
        return presenters.when(moment)
    return date_format(moment, DAY_FORMAT)


@register.simple_tag
def when_time(moment: datetime | date | None) -> SafeString | str:
    """`moment|when` in a `<time>` element whose datetime is ISO 8601 (UTC offset kept)."""
    if moment is None or moment == "":
        return ""
    machine = timezone.localtime(moment) if isinstance(moment, datetime) else moment
    return format_html('<time datetime="{}">{}</time>', machine.isoformat(), when(moment))
