"""Short links: each http(s) URL of a message becomes `HERALD_LINK_BASE` + `r/<code>`.

A code is 48 random bits written as 8 URL-safe characters (base64url), one per URL per
recipient, so a click tells which message it came from and nothing tells an outsider
whose link it is. A build's codes share their first character (`new_codes(together=)`),
each keeping 42 random bits of its own. The texts a campaign builds share one shape
(`Shortened.shape`): the short link's length never depends on its code, so segments,
encoding and cost are worked out once per distinct text, as before links, and each
recipient's codes are only put into the slots (`Shortened.fill`).

A click is recorded where it lands (`follow`): the link's own row (first, last,
total), an append-only Click row, and deltas of its campaign's kept counts
(messaging.counts), so no click waits on another's lock. HEAD requests and link-preview
fetchers are redirected but not counted.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from messaging import counts, events
from messaging.models import Click, Link, Message, MessageCount

CODE_BYTES = 6  # 48 random bits
CODE_LENGTH = 8  # base64 writes 6 bytes as exactly 8 characters, with no padding
CODE = re.compile(r"[A-Za-z0-9_-]{8}")
#: What the preview shows where each recipient's own code goes.
SAMPLE_CODE = "xxxxxxxx"
PATH = "r/"

#: A URL runs to the first space or character no URL holds unescaped; punctuation that
#: ends a sentence is not part of it ("Visit https://x.example/sale." ends at "sale").
URL = re.compile(r"https?://[^\s<>\"{}|\\^`\[\]]+", re.IGNORECASE)
TRAILING = ".,;:!?'*"
CLOSERS = {")": "("}

#: Fetchers that read a link to draw its preview, not people following it: WhatsApp,
#: iMessage (which calls itself facebookexternalhit and Twitterbot), Slack, Facebook,
#: Twitter/X, Telegram, Skype, Google's crawlers and previews, and a few more of the kind.
PREVIEW_AGENTS = re.compile(
    r"whatsapp|facebookexternalhit|facebot|twitterbot|slackbot|slack-imgproxy|telegrambot"
    r"|skypeuripreview|googlebot|google-|googleother|adsbot-google|mediapartners-google"
    r"|feedfetcher-google|google web preview|linkedinbot|discordbot|applebot|bingpreview"
    r"|redditbot|pinterest|embedly|iframely|vkshare|snapchat|viber",
    re.IGNORECASE,
)
MOBILE = re.compile(r"mobile|android|iphone|ipad|ipod|windows phone|kaios", re.IGNORECASE)
DESKTOP = re.compile(r"windows nt|macintosh|x11|cros|linux", re.IGNORECASE)


def link_base() -> str:
    """HERALD_LINK_BASE with one trailing slash; '' when links are not shortened."""
    base = settings.HERALD_LINK_BASE.strip()
    return base.rstrip("/") + "/" if base else ""


def find_urls(text: str) -> list[tuple[int, int]]:
    """(start, end) of each http(s) URL in `text`, without the punctuation after it."""
    found = []
    for match in URL.finditer(text):
        start, end = match.span()
        while end > start:
            last = text[end - 1]
            if last in TRAILING:
                end -= 1
            elif last in CLOSERS and text.count(CLOSERS[last], start, end) < text.count(
                last, start, end
            ):
                end -= 1  # "(see https://x.example/a)": the bracket is the sentence's
            else:
                break
        if end - start > len("https://"):
            found.append((start, end))
    return found


def new_codes(count: int, together: bool = False) -> list[str]:
    """`count` fresh codes, each from 48 bits of the operating system's randomness.

    `together`: all begin with one character (itself drawn at random), the other 42 bits
    of each its own. Codes written in one go then sit side by side in the code index,
    so a build's 5,000 links dirty a few dozen of its pages instead of 5,000 scattered
    ones (a million links were written four times faster that way on SQLite).
    """
    text = base64.urlsafe_b64encode(os.urandom(CODE_BYTES * count)).decode("ascii")
    codes = [text[i : i + CODE_LENGTH] for i in range(0, CODE_LENGTH * count, CODE_LENGTH)]
    if together and codes:
        first = codes[0][0]
        codes = [first + code[1:] for code in codes]
    return codes


def with_utm(url: str, source: str, campaign: str) -> str:
    """`url` with utm_source and utm_campaign added, unless it names its own."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    have = {name for name, _ in query}
    extra = [
        (k, v) for k, v in (("utm_source", source), ("utm_campaign", campaign)) if k not in have
    ]
    if not extra:
        return url
    joined = f"{parts.query}&{urlencode(extra)}" if parts.query else urlencode(extra)
    return urlunsplit(parts._replace(query=joined))


@dataclass(frozen=True)
class Shortened:
    """A text with its URLs taken out: `parts` around them, `urls` in order."""

    parts: tuple[str, ...]
    urls: tuple[str, ...]

    def shape(self, base: str, code: str = SAMPLE_CODE) -> str:
        """The text with every URL as a short link of `code` (all codes are as long)."""
        return self.fill(base, [code] * len(self.urls))

    def fill_urls(self) -> str:
        """The text as written, its URLs where they were."""
        pieces = [self.parts[0]]
        for url, part in zip(self.urls, self.parts[1:], strict=True):
            pieces += (url, part)
        return "".join(pieces)

    def fill(self, base: str, codes: Sequence[str]) -> str:
        pieces = [self.parts[0]]
        for code, part in zip(codes, self.parts[1:], strict=True):
            pieces += (base, PATH, code, part)
        return "".join(pieces)


def shorten(text: str) -> Shortened:
    parts, urls, at = [], [], 0
    for start, end in find_urls(text):
        parts.append(text[at:start])
        urls.append(text[start:end])
        at = end
    parts.append(text[at:])
    return Shortened(tuple(parts), tuple(urls))


@dataclass(frozen=True)
class ShortenedMessage:
    """A message's text and its WhatsApp template parameters, their URLs taken out.

    One code for each URL of the text (as `Shortened`), then one for each distinct URL
    of the parameters the text does not have: a parameter's URL that the text has too
    goes as the text's short link (the text is Herald's copy of the template the
    recipient gets, so both show the one link they can follow). `urls` holds the URL of
    each code in order, `slots` the codes of each parameter's URLs.
    """

    body: Shortened
    parameters: tuple[Shortened, ...]
    slots: tuple[tuple[int, ...], ...]
    urls: tuple[str, ...]
    #: Whether any parameter has a URL (most often none does: only the text is filled).
    in_parameters: bool

    def shape(self, base: str, code: str = SAMPLE_CODE) -> tuple[str, tuple[str, ...]]:
        """The text and parameters with every URL as a short link of `code`."""
        return self.fill(base, [code] * len(self.urls))

    def as_written(self) -> tuple[str, tuple[str, ...]]:
        return self.body.fill_urls(), tuple(part.fill_urls() for part in self.parameters)

    def fill(self, base: str, codes: Sequence[str]) -> tuple[str, tuple[str, ...]]:
        """The text and parameters with `codes` (one per `urls`) in their slots."""
        body = self.body.fill(base, codes[: len(self.body.urls)])
        parameters = tuple(
            part.fill(base, [codes[at] for at in slots]) if slots else part.parts[0]
            for part, slots in zip(self.parameters, self.slots, strict=True)
        )
        return body, parameters


def shorten_message(body: str, parameters: Sequence[str] = ()) -> ShortenedMessage:
    text = shorten(body)
    urls = list(text.urls)
    first = {url: at for at, url in reversed(list(enumerate(urls)))}
    parts, slots = [], []
    for value in parameters:
        part = shorten(value)
        for url in part.urls:
            if url not in first:
                first[url] = len(urls)
                urls.append(url)
        parts.append(part)
        slots.append(tuple(first[url] for url in part.urls))
    return ShortenedMessage(text, tuple(parts), tuple(slots), tuple(urls), in_parameters=any(slots))


@dataclass(frozen=True)
class LinkPolicy:
    """How a campaign's links go out: shortened on `base`, with UTM parameters or not."""

    base: str
    utm: tuple[str, str] | None  # (utm_source, utm_campaign)

    def destination(self, url: str) -> str:
        return with_utm(url, *self.utm) if self.utm else url


# Clicks.


def agent_class(user_agent: str) -> str:
    if MOBILE.search(user_agent):
        return Click.Agent.MOBILE
    if DESKTOP.search(user_agent):
        return Click.Agent.DESKTOP
    return Click.Agent.OTHER


def counted(method: str, user_agent: str) -> bool:
    """Whether a request is someone following the link, not a HEAD or a preview fetcher."""
    return method == "GET" and not PREVIEW_AGENTS.search(user_agent)


def destination(code: str) -> str | None:
    """Where a live link leads, without counting; None for no such link or a purged one."""
    if not CODE.fullmatch(code):
        return None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT url FROM {Link._meta.db_table} WHERE code = %s", [code])  # noqa: S608 - name from meta
        row = cursor.fetchone()
    return row[0] if row and row[0] else None


def follow(code: str, agent: str) -> str | None:
    """Count one click on a live link and return where it leads (None for no such link
    or a purged one): the link's first, last and total, a Click row, and its campaign's
    kept counts (a test send's link counts on the link alone).

    A few plain statements in one transaction (one statement on PostgreSQL), each
    touching this link's own row or appending, so nothing waits on a campaign-wide row
    and the answer is not held up.
    """
    if not CODE.fullmatch(code):
        return None
    now = timezone.now()
    if events.link_clicked.wanted():
        # Someone follows clicks: the click and what it tells them commit together.
        with transaction.atomic():
            url = _follow(code, agent, now)
            if url is not None:
                events.link_clicked.send(sender=Link, code=code, clicked_at=now, agent=agent)
        return url
    return _follow(code, agent, now)


def _follow(code: str, agent: str, now: datetime) -> str | None:
    """The click's writes, in one statement on PostgreSQL; where the link leads."""
    if connection.vendor == "postgresql":
        return _follow_in_one(code, agent, now)
    stamp = connection.ops.adapt_datetimefield_value(now)
    links, messages = Link._meta.db_table, Message._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        # The row lock orders two clicks of one link, so only the click that found
        # first_clicked_at empty reads its own time back.
        cursor.execute(
            f"UPDATE {links} SET clicks = clicks + 1, last_clicked_at = %s, "  # noqa: S608 - names from meta
            "first_clicked_at = COALESCE(first_clicked_at, %s) WHERE code = %s AND url <> '' "
            f"RETURNING url, message_id, first_clicked_at, "
            f"(SELECT campaign_id FROM {messages} WHERE id = message_id), "
            f"(SELECT variant FROM {messages} WHERE id = message_id)",
            [stamp, stamp, code],
        )
        row = cursor.fetchone()
        if row is None:
            return None
        url, message_id, first_at, campaign_id, variant = row
        cursor.execute(
            f"INSERT INTO {Click._meta.db_table} (link_id, clicked_at, agent) "  # noqa: S608 - name from meta
            "VALUES (%s, %s, %s)",
            [code, stamp, agent],
        )
        if campaign_id is not None:
            keys = [counts.CLICKS_TOTAL, counts.CLICK_HOUR + counts.utc_hour(now)]
            first = first_at == stamp or _same_moment(first_at, now)
            if first and not _clicked_before(cursor, message_id, code):
                keys.append(counts.CLICKS_UNIQUE)
            if variant:  # an A/B campaign's: its variant's figures too
                keys += [
                    f"{counts.VARIANT}{variant}:{key}" for key in keys if key.startswith("clicks:")
                ]
            values = ", ".join(["(%s, %s, 1, '')"] * len(keys))
            cursor.execute(
                f"INSERT INTO {MessageCount._meta.db_table} (campaign_id, key, n, note) "  # noqa: S608 - name from meta
                f"VALUES {values}",
                [part for key in keys for part in (campaign_id, key)],
            )
    return str(url)


def _follow_in_one(code: str, agent: str, now: datetime) -> str | None:
    """`follow` on PostgreSQL: the same writes as one statement, one round trip.

    A click is not worth waiting for a WAL flush (synchronous_commit off for this
    transaction alone): a crash may lose the last instant's clicks, never half of one.
    The row lock orders two clicks of one link, so only the click that found
    first_clicked_at empty reads its own time back (`first`); every part of the
    statement sees the rows as they were before it, so another link of the message
    clicked already is one with a first click now.
    """
    hour = counts.CLICK_HOUR + counts.utc_hour(now)
    sql = f"""
        WITH cfg AS (SELECT set_config('synchronous_commit', 'off', true)),
        link AS (
            UPDATE {Link._meta.db_table}
            SET clicks = clicks + 1, last_clicked_at = %(now)s,
                first_clicked_at = COALESCE(first_clicked_at, %(now)s)
            WHERE code = %(code)s AND url <> ''
            RETURNING url, message_id, first_clicked_at = %(now)s AS first
        ),
        click AS (
            INSERT INTO {Click._meta.db_table} (link_id, clicked_at, agent)
            SELECT %(code)s, %(now)s, %(agent)s FROM link
        ),
        counted AS (
            SELECT message.campaign_id, message.variant,
                link.first AND NOT EXISTS (
                    SELECT 1 FROM {Link._meta.db_table} other
                    WHERE other.message_id = link.message_id AND other.code <> %(code)s
                    AND other.first_clicked_at IS NOT NULL
                ) AS first_of_message
            FROM link JOIN {Message._meta.db_table} message ON message.id = link.message_id
            WHERE message.campaign_id IS NOT NULL
        ),
        kept AS (
            INSERT INTO {MessageCount._meta.db_table} (campaign_id, key, n, note)
            SELECT campaign_id, key, 1, '' FROM counted CROSS JOIN LATERAL (VALUES
                (%(total)s, true),
                (%(hour)s, true),
                (%(unique)s, first_of_message),
                (%(variant)s || variant || ':' || %(total)s, variant <> ''),
                (%(variant)s || variant || ':' || %(unique)s, variant <> '' AND first_of_message)
            ) AS keys(key, wanted)
            WHERE wanted
        )
        SELECT url FROM link, cfg
    """  # noqa: S608 - names from model meta
    params: dict[str, Any] = {
        "now": now,
        "code": code,
        "agent": agent,
        "total": counts.CLICKS_TOTAL,
        "unique": counts.CLICKS_UNIQUE,
        "hour": hour,
        "variant": counts.VARIANT,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else str(row[0])


def _same_moment(value: Any, now: datetime) -> bool:
    """Whether a datetime read back raw (a string on SQLite) is `now`."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value == now


def _clicked_before(cursor: Any, message_id: int, code: str) -> bool:
    """Whether another link of the same message was clicked already (one recipient counts
    once among the unique clicks, however many of its links they follow)."""
    cursor.execute(
        f"SELECT 1 FROM {Link._meta.db_table} WHERE message_id = %s AND code <> %s "  # noqa: S608 - name from meta
        "AND first_clicked_at IS NOT NULL",
        [message_id, code],
    )
    return cursor.fetchone() is not None
