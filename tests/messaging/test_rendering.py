import unicodedata

import pytest
from gsm0338.charset import BASIC_CHARACTER_SET, BASIC_CHARACTER_SET_EXTENSION
from hypothesis import given
from hypothesis import strategies as st

from messaging.rendering import (
    GSM7,
    UCS2,
    encoding_of,
    placeholders,
    render,
    segments_of,
    split_parts,
    ucs2_characters,
)

# Built from the package's names, not from messaging.rendering, so the reference is independent.
GSM7_BASIC = [unicodedata.lookup(name) for name in BASIC_CHARACTER_SET.values() if name != "ESCAPE"]
GSM7_EXTENSION = [unicodedata.lookup(name) for name in BASIC_CHARACTER_SET_EXTENSION.values()]

ARABIC = "ب"  # one UTF-16 unit, not GSM-7
EMOJI = "😀"  # a surrogate pair: two UTF-16 units
ALPHA, BETA, GAMMA = "\N{GREEK SMALL LETTER ALPHA}", "β", "\N{GREEK SMALL LETTER GAMMA}"


def reference_parts(text: str, single: int, per_part: int, cost: dict[str, int]) -> list[str]:
    """One character at a time: start a new part when the next character does not fit."""
    if sum(cost[char] for char in text) <= single:
        return [text]
    parts = [""]
    used = 0
    for char in text:
        if used + cost[char] > per_part:
            parts.append("")
            used = 0
        parts[-1] += char
        used += cost[char]
    return parts


GSM7_COST = {char: 1 for char in GSM7_BASIC} | {char: 2 for char in GSM7_EXTENSION}


def test_render_fills_fields_and_defaults() -> None:
    body = "Hi {{ name | there }}, {{code}}!"
    assert placeholders(body) == ["name", "code"]
    assert render(body, {"name": "", "code": "42"}) == "Hi there, 42!"


def test_empty_text_is_one_gsm7_segment() -> None:
    assert segments_of("") == (GSM7, 1)
    assert split_parts("") == [""]


@pytest.mark.parametrize(
    ("length", "segments"), [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (1000, 7)]
)
def test_gsm7_segment_boundaries(length: int, segments: int) -> None:
    assert segments_of("a" * length) == (GSM7, segments)


@pytest.mark.parametrize(
    ("length", "segments"), [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (1000, 15)]
)
def test_ucs2_segment_boundaries(length: int, segments: int) -> None:
    assert segments_of(ARABIC * length) == (UCS2, segments)


@pytest.mark.parametrize("char", GSM7_EXTENSION)
def test_extension_characters_cost_two_septets(char: str) -> None:
    assert segments_of(char * 80) == (GSM7, 1)
    assert segments_of(char * 81) == (GSM7, 2)


def test_escape_pair_straddling_a_part_boundary_moves_to_the_next_part() -> None:
    # 306 septets: septets / 153 says 2, but the € cannot start at septet 153 of part one.
    text = "a" * 152 + "€" + "a" * 152
    assert segments_of(text) == (GSM7, 3)
    assert split_parts(text) == ["a" * 152, "€" + "a" * 151, "a"]


def test_surrogate_pair_straddling_a_part_boundary_moves_to_the_next_part() -> None:
    # 134 units: units / 67 says 2, but the emoji cannot start at unit 67 of part one.
    text = ARABIC * 66 + EMOJI + ARABIC * 66
    assert segments_of(text) == (UCS2, 3)
    assert split_parts(text) == [ARABIC * 66, EMOJI + ARABIC * 65, ARABIC]


def test_emoji_count_two_utf16_units() -> None:
    assert segments_of(EMOJI * 35) == (UCS2, 1)
    assert segments_of(EMOJI * 36) == (UCS2, 2)
    assert split_parts(EMOJI * 36) == [EMOJI * 33, EMOJI * 3]


def test_arabic_text_is_ucs2() -> None:
    assert segments_of("مرحبا بكم في متجرنا") == (UCS2, 1)


def test_greek_capitals_in_the_basic_table_are_gsm7_but_lowercase_greek_is_not() -> None:
    assert segments_of("ΔΦΓΛΩΠΨΣΘΞ" * 16) == (GSM7, 1)
    assert encoding_of(ALPHA + BETA + GAMMA) == UCS2
    assert ucs2_characters(f"ΔΦΓ {ALPHA}{BETA}{GAMMA}") == [ALPHA, BETA, GAMMA]


def test_a_bare_escape_character_forces_ucs2() -> None:
    assert encoding_of("\x1b") == UCS2


def test_ucs2_characters_highlights_exactly_the_offending_characters() -> None:
    assert ucs2_characters("Hello “world” 😀, “again”") == ["“", "”", "😀"]
    assert ucs2_characters("Price: €5 [ok] {x} ~^|\\ \x0c Δ @£$¥") == []


@given(st.text(max_size=1000))
def test_any_text_has_at_least_one_segment_and_its_parts_rebuild_it(text: str) -> None:
    encoding, segments = segments_of(text)
    parts = split_parts(text)
    assert segments >= 1
    assert len(parts) == segments
    assert "".join(parts) == text
    assert encoding == (UCS2 if ucs2_characters(text) else GSM7)


gsm7_texts = st.text(
    alphabet=st.one_of(st.sampled_from(GSM7_BASIC), st.sampled_from(GSM7_EXTENSION)),
    max_size=700,
)


@given(gsm7_texts)
def test_gsm7_segments_match_a_simple_packer(text: str) -> None:
    expected = reference_parts(text, 160, 153, GSM7_COST)
    assert segments_of(text) == (GSM7, len(expected))
    assert split_parts(text) == expected


ucs2_texts = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from([ARABIC, ALPHA, "“", EMOJI, "𝄞"]),
    st.text(alphabet=st.sampled_from(["a", "€", ARABIC, ALPHA, EMOJI, "𝄞", "🇬"]), max_size=300),
)


@given(ucs2_texts)
def test_ucs2_segments_match_a_simple_packer(text: str) -> None:
    cost = {char: 2 if ord(char) > 0xFFFF else 1 for char in text}
    expected = reference_parts(text, 70, 67, cost)
    assert segments_of(text) == (UCS2, len(expected))
    assert split_parts(text) == expected
