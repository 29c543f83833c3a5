"""The contract's rules for names and titles (domain/rules.py): pure, no I/O."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatroom.domain.rules import (
    RuleError,
    check_display_name,
    clean_label,
    fallback_slug,
    slug_from_title,
)

# Each would make a name look like another, or like something it is not.
UNSEEN = {
    "bidi override": "admin\u202e (system)",
    "bidi isolate": "ad\u2066min\u2069",
    "left-to-right mark": "alice\u200e",
    "arabic letter mark": "ali\u061cce",
    "zero-width space": "al\u200bice",
    "zero-width joiner between letters": "al\u200dice",
    "zero-width non-joiner": "alice\u200c",
    "byte order mark": "\ufeffalice",
    "NUL": "ali\x00ce",
    "newline": "ali\nce",
    "escape": "ali\x1b[31mce",
    "line separator": "ali\u2028ce",
    "paragraph separator": "ali\u2029ce",
    "soft hyphen": "ali\xadce",
    "tag character": "alice\U000e0041",
}


@pytest.mark.parametrize("name", UNSEEN.values(), ids=UNSEEN.keys())
def test_a_display_name_holds_nothing_unseen(name: str) -> None:
    with pytest.raises(RuleError) as refused:
        check_display_name(name)
    assert refused.value.code == "invalid_display_name"
    assert "U+" in refused.value.message  # says which character


@pytest.mark.parametrize("field", ["title", "name"])
def test_titles_and_token_names_share_the_rule(field: str) -> None:
    with pytest.raises(RuleError) as refused:
        clean_label("Lobby\u202e", field=field, max_chars=64)
    assert refused.value.code == f"invalid_{field}"


@pytest.mark.parametrize(
    "name",
    [
        "Alice Ünal 🦊",
        "张伟",
        "محمد",
        "Ελένη",
        "👩\u200d💻 dev",  # a zero-width joiner inside an emoji is part of the emoji
        "👩🏽\u200d🚀",
        "❤\ufe0f\u200d🔥",
        "🏳\ufe0f\u200d🌈",
        "e\u0301clair",  # a combining accent is seen
        "  padded  ",
    ],
)
def test_names_of_any_script_and_emoji_stay_allowed(name: str) -> None:
    assert check_display_name(name) == name.strip()


_SLUG_CASES = json.loads(
    (Path(__file__).parent / "fixtures" / "slug_from_title.json").read_text(encoding="utf-8")
)["cases"]


@pytest.mark.parametrize(("title", "slug"), _SLUG_CASES)
def test_slug_from_title_agrees_with_the_web_client(title: str, slug: str | None) -> None:
    # The same fixture drives the client's test (client/tests/unit/lib.spec.ts).
    assert slug_from_title(title) == slug


def test_fallback_slug_is_a_valid_slug_for_any_title() -> None:
    assert fallback_slug("k3x9q2zzzz") == "room-k3x9q2"
    with pytest.raises(RuleError):
        fallback_slug("ÄÖ")
