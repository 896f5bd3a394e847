"""Keyword matching: every language's words, as the whole message or its first word."""

import pytest

from messaging import keywords
from messaging.keywords import default_rows, match, normalise
from messaging.models import Keyword

pytestmark = pytest.mark.django_db

#: The opt-out words the issue names; each must opt out as it is typed by people.
REQUIRED_OPT_OUTS = (
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "REMOVE",
    "ARRET",
    "ARRÊT",
    "STOPP",
    "BAJA",
    "ALTO",
    "PARAR",
    "SAIR",
    "CANCELAR",
    "ABMELDEN",
    "DISDICI",
    "AFMELDEN",
    "退订",
)


def action_of(text: str) -> str | None:
    found = match(text)
    return found.action if found else None


@pytest.mark.parametrize("word", REQUIRED_OPT_OUTS)
def test_each_required_word_opts_out_however_it_is_written(word: str) -> None:
    expected = "opt_out_all" if word == "STOPALL" else "opt_out"
    for written in (word, word.lower(), word.title(), f"  {word}!! ", f"{word}.", f"{word} please"):
        assert action_of(written) == expected, written


@pytest.mark.parametrize(
    ("word", "normalised", "language", "action"),
    default_rows(),
    ids=[f"{row[2]}-{row[0]}" for row in default_rows()],
)
def test_every_listed_word_of_every_language_matches(
    word: str, normalised: str, language: str, action: str
) -> None:
    """The seeded table holds every list; each entry matches as written, in lower case and
    with punctuation; single words also as a first word, phrases anywhere."""
    assert Keyword.objects.filter(normalised=normalised, language=language, action=action)
    found = match(word)
    assert found is not None and (found.action, found.language) == (action, language)
    assert action_of(word.lower() + "!") == action
    if action == keywords.POSSIBLE:
        assert action_of(f"hi, {word.lower()} thanks") == action
    elif " " not in normalised:
        assert action_of(f"{word} merci") == action


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("Stop!", "opt_out"),
        (" stop please", "opt_out"),
        ("Arrêt", "opt_out"),
        ("arret svp", "opt_out"),
        ("STOPP.", "opt_out"),
        ("\uff33\uff54\uff4f\uff50", "opt_out"),  # full-width "Stop" from a CJK keyboard
        ("stop\n", "opt_out"),
        ("s.t.o.p", None),  # a letter at a time is not the word
        ("don't stop", None),
        ("non-stop deals?", None),
        ("Stopping by later", None),
        ("Is the shop open?", None),
        ("", None),
        ("!!!", None),
        ("please stop texting me", "possible_opt_out"),
        ("remove me from your list", "possible_opt_out"),
        ("Can you take me off this list", "possible_opt_out"),
        ("ne plus recevoir ces messages", "possible_opt_out"),
        ("START", "opt_in"),
        ("unstop", "opt_in"),
        ("Yes", "opt_in"),
        ("HELP", "help"),
        ("info?", "help"),
        ("Aide", "help"),
        ("stop all", "opt_out_all"),
        ("StopAll", "opt_out_all"),
    ],
)
def test_what_a_reply_means(text: str, action: str | None) -> None:
    assert action_of(text) == action


def test_normalising_drops_case_accents_punctuation_and_spacing() -> None:
    assert normalise("  ¡Arrêt,  S'IL   vous plaît! ") == "arret s il vous plait"
    assert normalise("\uff33\uff34\uff2f\uff30") == "stop"  # full-width
    assert normalise("退订。") == "退订"


def test_an_edited_keyword_takes_effect_at_once_and_a_removed_one_stops() -> None:
    assert action_of("ENOUGH") is None
    added = Keyword.objects.create(word="Enough", language="en", action="opt_out")
    assert action_of("enough!") == "opt_out"
    added.is_active = False
    added.save()
    assert action_of("enough!") is None
    Keyword.objects.filter(word="STOP").delete()
    keywords.forget()
    assert action_of("STOP") is None


def test_a_help_keyword_carries_its_language_s_reply() -> None:
    Keyword.objects.filter(word="AIDE").update(reply="Répondez STOP pour arrêter.")
    keywords.forget()
    found = match("aide")
    assert found is not None and found.reply == "Répondez STOP pour arrêter."
