"""Cursor pagination for every list: newest first, stable while rows are added.

The cursor is opaque to clients (base64 of the last id seen); `next_cursor` is null on the
last page. Offsets are not offered: they skip or repeat rows as a list grows, and cost a
scan of everything before the page.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import QuerySet

from api.errors import invalid

#: A page's size when the client names none, and the most it may ask for.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

T = TypeVar("T")


def encode(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "id":
            raise ValueError(text)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid("The cursor is not one this API gave.", {"cursor": ["unknown"]}) from None


def page(
    queryset: QuerySet[Any],
    cursor: str | None,
    limit: int | None,
    shown: Callable[[Any], T] = lambda row: row,
) -> dict[str, Any]:
    """{"results": [...], "next_cursor": str | None}: up to `limit` rows after `cursor`."""
    size = DEFAULT_LIMIT if limit is None else limit
    if not 1 <= size <= MAX_LIMIT:
        raise invalid(f"limit must be between 1 and {MAX_LIMIT}.", {"limit": [str(size)]})
    rows = queryset.order_by("-pk")
    if cursor:
        rows = rows.filter(pk__lt=decode(cursor))
    found = list(rows[: size + 1])
    more = len(found) > size
    found = found[:size]
    return {
        "results": [shown(row) for row in found],
        "next_cursor": encode(found[-1].pk) if more and found else None,
    }
