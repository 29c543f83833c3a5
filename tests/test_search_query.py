"""The pure part of message search: a query's words, each engine's match text, the
highlighted ranges and the page cursor."""

from __future__ import annotations

import pytest

from chatroom.domain.rules import RuleError
from chatroom.domain.search_query import DEPTH_MAX, Cursor, fold, highlights, parse_query


def test_a_query_is_its_words_lower_cased_once_each() -> None:
    assert parse_query("  Deploy, deploy: PROD-2 naïve_ok ").terms == (
        "deploy",
        "prod",
        "2",
        "naïve_ok",
    )
    assert parse_query("你好 世界").terms == ("你好", "世界")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (None, "invalid_query"),
        ("", "invalid_query"),
        ("  ", "invalid_query"),
        ('"+-*()', "invalid_query"),
        ("x" * 101, "invalid_query"),
        ("one two three four five six seven eight nine", "invalid_query"),
        ("bell\x07", "invalid_query"),
        ("right\u202eleft", "invalid_query"),
        ("lone \ud800", "invalid_query"),
    ],
)
def test_bad_queries_are_refused_with_a_code(text: object, code: str) -> None:
    with pytest.raises(RuleError) as refused:
        parse_query(text)
    assert refused.value.code == code


def test_engine_match_texts_hold_only_words_and_the_engines_own_operators() -> None:
    query = parse_query('say "hi" OR the-end* NEAR(x)')
    assert query.terms == ("say", "hi", "or", "the", "end", "near", "x")
    assert query.fts5() == '"say"* "hi"* "or"* "the"* "end"* "near"* "x"*'
    against, substrings = query.innodb(min_token=3, stopwords=True)
    assert against == "+say* +end* +near*"
    assert substrings == ("hi", "or", "the", "x")
    assert parse_query("the").innodb(min_token=3, stopwords=False) == ("+the*", ())
    with pytest.raises(RuleError) as refused:
        parse_query("to be or").innodb(min_token=3, stopwords=True)
    assert refused.value.code == "search_too_short"


def test_highlights_are_whole_words_in_utf16_units() -> None:
    body = "😀 Deployed to prod, re-deploy later; snake_case Café"
    ranges = highlights(body, ("deploy", "case", "cafe"))
    # Python slices by code point; the emoji is two UTF-16 units.
    utf16 = body.encode("utf-16-le")
    shown = [utf16[2 * a : 2 * b].decode("utf-16-le") for a, b in ranges]
    assert shown == ["Deployed", "deploy", "snake_case", "Café"]
    assert highlights("nothing here", ("else",)) == []
    assert fold("Ünïcödé") == "unicode"


def test_a_cursor_round_trips_and_a_forged_one_is_refused() -> None:
    cursor = Cursor(20, 12345)
    assert Cursor.decode(cursor.encode()) == cursor
    for bad in [
        "",
        "!!!",
        "e30",  # {}
        Cursor(0, 1).encode(),
        Cursor(DEPTH_MAX + 1, 1).encode(),
        Cursor(5, -1).encode(),
        "W10",  # []
        "x" * 200,
    ]:
        with pytest.raises(RuleError) as refused:
            Cursor.decode(bad)
        assert refused.value.code == "invalid_cursor"
