"""What a reply asks for: opt out, opt back in, help, or perhaps to stop in other words.

The words are data (messaging.models.Keyword, edited in the admin per language; the
lists below are what a new database starts with). A reply and every keyword are
normalised the same way: Unicode compatibility forms folded (full-width letters),
case folded, accents dropped, punctuation and symbols turned into spaces, spacing
collapsed. A reply then matches a keyword when the whole of it, or its first word,
is that keyword: one dictionary lookup each. "Stop!", " stop please" and "Arrêt"
opt out; "don't stop" (first word "don") and "non-stop deals?" ("non") do not.

Phrases (action possible_opt_out) are looked for anywhere in a reply that is not a
keyword as a whole, as whole words, by one compiled pattern, before its first word is
tried; they only flag the reply for a person to confirm in the inbox ("please stop
texting me", "remove me from your list": a phrase wins over the first word REMOVE,
since the rest of the message may change what it means).

The table is read once per process and again when any keyword changes (a counter in
the shared cache, bumped on save and delete), or at the latest RELOAD_SECONDS after it
was read (a per-process cache on a single machine is not shared), so matching costs
no query.
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

#: (language, action, words). Several languages share words (STOP, PARAR): the first
#: listed keeps it.
DEFAULT_KEYWORDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "en",
        "opt_out",
        (
            "STOP",
            "UNSUBSCRIBE",
            "UNSUB",
            "CANCEL",
            "END",
            "QUIT",
            "OPTOUT",
            "OPT-OUT",
            "OPT OUT",
            "REMOVE",
            "REVOKE",
        ),
    ),
    ("en", "opt_out_all", ("STOPALL", "STOP ALL")),
    ("fr", "opt_out", ("ARRÊT", "ARRETER", "ARRÊTER", "DÉSABONNER", "DÉSINSCRIRE", "STOP SMS")),
    ("de", "opt_out", ("STOPP", "ABMELDEN", "ABBESTELLEN", "ABMELDUNG", "KÜNDIGEN")),
    ("es", "opt_out", ("BAJA", "ALTO", "PARAR", "CANCELAR", "DETENER", "DARSE DE BAJA")),
    ("pt", "opt_out", ("SAIR", "PARE", "DESCADASTRAR", "CANCELE")),
    ("it", "opt_out", ("DISDICI", "BASTA", "CANCELLAMI", "DISISCRIVIMI")),
    ("nl", "opt_out", ("AFMELDEN", "STOPPEN", "UITSCHRIJVEN")),
    ("sv", "opt_out", ("STOPPA", "AVSLUTA", "AVREGISTRERA")),
    ("da", "opt_out", ("AFMELD", "FRAMELD")),
    ("no", "opt_out", ("AVMELD", "MELD AV")),
    ("pl", "opt_out", ("REZYGNUJĘ", "WYPISZ")),
    ("tr", "opt_out", ("IPTAL", "DUR", "RET")),
    ("ru", "opt_out", ("СТОП", "ОТПИСАТЬСЯ", "ОТПИСКА")),
    ("el", "opt_out", ("ΔΙΑΚΟΠΗ",)),
    ("ar", "opt_out", ("توقف", "الغاء", "إلغاء")),
    ("zh", "opt_out", ("退订", "退訂", "TD", "取消订阅")),
    ("ja", "opt_out", ("配信停止", "停止")),
    ("ko", "opt_out", ("수신거부",)),
    ("hi", "opt_out", ("बंद",)),
    ("en", "opt_in", ("START", "UNSTOP", "YES", "RESUME", "SUBSCRIBE")),
    ("fr", "opt_in", ("REPRENDRE",)),
    ("es", "opt_in", ("ALTA",)),
    ("de", "opt_in", ("ANMELDEN",)),
    ("en", "help", ("HELP", "INFO")),
    ("fr", "help", ("AIDE",)),
    ("es", "help", ("AYUDA",)),
    ("de", "help", ("HILFE",)),
    ("pt", "help", ("AJUDA",)),
    ("it", "help", ("AIUTO",)),
    ("nl", "help", ("HULP",)),
    ("zh", "help", ("帮助",)),
    (
        "en",
        "possible_opt_out",
        (
            "stop texting",
            "stop messaging",
            "stop sending",
            "stop contacting",
            "stop these",
            "remove me",
            "take me off",
            "unsubscribe me",
            "opt me out",
            "no more messages",
            "no more texts",
            "don't text",
            "dont text",
            "do not text",
            "don't message",
            "do not message",
            "do not contact",
            "leave me alone",
        ),
    ),
    ("fr", "possible_opt_out", ("ne plus recevoir", "arretez de", "ne m'envoyez plus")),
    ("es", "possible_opt_out", ("no me envien", "dejen de enviar", "no quiero recibir")),
    ("de", "possible_opt_out", ("keine sms mehr", "nicht mehr schreiben")),
)

OPT_OUT, OPT_OUT_ALL, OPT_IN, HELP, POSSIBLE = (
    "opt_out",
    "opt_out_all",
    "opt_in",
    "help",
    "possible_opt_out",
)
CACHE_KEY = "herald:keywords:version"
RELOAD_SECONDS = 30.0


def normalise(text: str) -> str:
    """`text` folded for comparing: no case, accents, punctuation or repeated spaces."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    out = []
    for char in folded:
        kind = unicodedata.category(char)
        if kind == "Mn":  # the accents NFKD split off
            continue
        out.append(" " if kind[0] in "PSZC" else char)
    return " ".join("".join(out).split())


@dataclass(frozen=True)
class Match:
    action: str
    #: The keyword as stored (e.g. "ARRÊT") and its language.
    word: str
    language: str
    reply: str = ""


@dataclass(frozen=True)
class _Table:
    version: Any
    loaded_at: float
    words: dict[str, Match]
    phrases: re.Pattern[str] | None
    phrase_matches: dict[str, Match]


_loaded: _Table | None = None
_lock = threading.Lock()


def match(text: str) -> Match | None:
    """The keyword `text` is, or starts with; else a possible opt-out phrase in it; else None."""
    table = _table()
    normalised = normalise(text[:1000])
    if not normalised:
        return None
    found = table.words.get(normalised)
    if found is not None:
        return found
    if table.phrases is not None and (hit := table.phrases.search(normalised)):
        return table.phrase_matches[hit.group(0)]
    return table.words.get(normalised.split(" ", 1)[0])


def _table() -> _Table:
    global _loaded
    version = cache.get(CACHE_KEY, 0)
    table = _loaded
    if table is not None and table.version == version and not _stale(table):
        return table
    with _lock:
        if _loaded is None or _loaded.version != version or _stale(_loaded):
            _loaded = _load(version)
        return _loaded


def _stale(table: _Table) -> bool:
    return time.monotonic() - table.loaded_at > RELOAD_SECONDS


def _load(version: Any) -> _Table:
    from messaging.models import Keyword

    words: dict[str, Match] = {}
    phrases: dict[str, Match] = {}
    rows = Keyword.objects.filter(is_active=True).values_list(
        "normalised", "word", "language", "action", "reply"
    )
    for normalised, word, language, action, reply in rows:
        if not normalised:
            continue
        found = Match(action, word, language, reply)
        (phrases if action == POSSIBLE else words)[normalised] = found
    pattern = None
    if phrases:
        alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
        pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
    return _Table(version, time.monotonic(), words, pattern, phrases)


def forget() -> None:
    """Make every process read the keywords again before its next match."""
    global _loaded
    try:
        cache.incr(CACHE_KEY)
    except ValueError:
        cache.set(CACHE_KEY, 1, None)
    _loaded = None


def default_rows() -> list[tuple[str, str, str, str]]:
    """(word, normalised, language, action) for the lists above, first of each word kept."""
    seen: set[str] = set()
    rows = []
    for language, action, words in DEFAULT_KEYWORDS:
        for word in words:
            key = normalise(word)
            if key and key not in seen:
                seen.add(key)
                rows.append((word, key, language, action))
    return rows


@receiver(post_save, sender="messaging.Keyword")
@receiver(post_delete, sender="messaging.Keyword")
def _keywords_changed(**kwargs: Any) -> None:
    forget()
