"""Message search, the pure part: a user's query as terms, each engine's match expression
built from them, the highlighted ranges of a found body, and the page cursor.

A query is its words: maximal runs of letters, digits and `_` in any script (`\\w+`),
folded to lower case; everything else (quotes, `+ - * ( ) ~ < > @ " :` and the rest of
either engine's operators) separates words and is never passed on. Each word must begin a
word of the message (a prefix match: `deploy` finds "deployed"), all of them (AND).

Neither engine's match syntax ever sees user text that could be an operator: a term is
`\\w+` only, and is written quoted for SQLite FTS5 (`"term"*`) and bare with `+`/`*` for
MariaDB's boolean mode (`+term*`), where a word of `\\w` characters is one token.

MariaDB's InnoDB FULLTEXT index holds no word shorter than `innodb_ft_min_token_size` (3)
and none of its stopwords (`the`, `with`, ...): requiring one of those (`+the*`) would match
nothing. Such terms are matched instead as a substring of the body (a LIKE on the rows the
other terms found); a query of only such terms is refused there (`search_too_short`),
as it could only be answered by reading every message. SQLite's FTS5 has neither limit.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from dataclasses import dataclass

from chatroom.domain.rules import RuleError, has_lone_surrogate, unseen_character

# A search text: 1-100 characters after trimming, at most 8 distinct words.
QUERY_MAX_CHARS = 100
TERMS_MAX = 8
# How deep the pages of one search go: the results past this many are not shown (a
# search that finds thousands is narrowed, not paged through).
DEPTH_MAX = 1000
PAGE_DEFAULT, PAGE_MAX = 20, 50

_WORD = re.compile(r"\w+")
_WORD_PART = re.compile(r"[^\W_]+")

# InnoDB's default stopword list (INFORMATION_SCHEMA.INNODB_FT_DEFAULT_STOPWORD).
INNODB_STOPWORDS = frozenset(
    [
        "a",
        "about",
        "an",
        "are",
        "as",
        "at",
        "be",
        "by",
        "com",
        "de",
        "en",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "la",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "who",
        "will",
        "with",
        "und",
        "www",
    ]
)


def fold(text: str) -> str:
    """Lower case without accents, as both engines compare words (`Café` -> `cafe`)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass(frozen=True, slots=True)
class SearchQuery:
    terms: tuple[str, ...]  # lower-cased words, distinct, in the order typed

    def fts5(self) -> str:
        """The FTS5 MATCH expression: every term as a quoted prefix, all required."""
        return " ".join('"' + term.replace('"', '""') + '"*' for term in self.terms)

    def innodb(self, *, min_token: int, stopwords: bool) -> tuple[str, tuple[str, ...]]:
        """The boolean-mode AGAINST text for the terms InnoDB indexes, and the terms it
        cannot (too short, or stopwords), to be matched as substrings instead."""
        indexed = [t for t in self.terms if _indexable(t, min_token=min_token, stopwords=stopwords)]
        others = tuple(t for t in self.terms if t not in indexed)
        if not indexed:
            raise RuleError(
                "search_too_short",
                f"search for at least one word of {min_token} or more letters that is not "
                "among the most common English words",
            )
        return " ".join(f"+{term}*" for term in indexed), others


def _indexable(term: str, *, min_token: int, stopwords: bool) -> bool:
    return len(term) >= min_token and not (stopwords and term in INNODB_STOPWORDS)


def parse_query(text: object) -> SearchQuery:
    """The terms of a search text, or `invalid_query` (422)."""
    if not isinstance(text, str):
        raise RuleError("invalid_query", "q must be a string")
    trimmed = text.strip()
    if not 1 <= len(trimmed) <= QUERY_MAX_CHARS or has_lone_surrogate(trimmed):
        raise RuleError("invalid_query", f"q is 1-{QUERY_MAX_CHARS} characters")
    unseen = unseen_character(trimmed)
    if unseen is not None:
        raise RuleError("invalid_query", "q may not hold control or invisible characters")
    terms: list[str] = []
    for word in _WORD.findall(trimmed):
        term = word.lower()
        if term not in terms:
            terms.append(term)
    if not terms:
        raise RuleError("invalid_query", "q needs a word: letters or digits")
    if len(terms) > TERMS_MAX:
        raise RuleError("invalid_query", f"q holds at most {TERMS_MAX} words")
    return SearchQuery(tuple(terms))


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def highlights(body: str, terms: tuple[str, ...]) -> list[tuple[int, int]]:
    """The [start, end) ranges of the body's words that a term begins (or a part of the
    word between `_`s does), in UTF-16 code units as JavaScript's String.slice counts."""
    folded_terms = [fold(t) for t in terms]
    ranges: list[tuple[int, int]] = []
    offset_chars, offset_units = 0, 0
    for word in _WORD.finditer(body):
        parts = [fold(word.group())] + [fold(p) for p in _WORD_PART.findall(word.group())]
        if not any(part.startswith(term) for part in parts for term in folded_terms if term):
            continue
        offset_units += _utf16_length(body[offset_chars : word.start()])
        length = _utf16_length(word.group())
        ranges.append((offset_units, offset_units + length))
        offset_chars, offset_units = word.end(), offset_units + length
    return ranges


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: an offset into the ranked results, and the newest
    message row (SQL id) the first page saw, so that later arrivals do not shift pages."""

    offset: int
    newest_row: int

    def encode(self) -> str:
        raw = json.dumps({"o": self.offset, "n": self.newest_row}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def decode(text: str) -> Cursor:
        refused = RuleError("invalid_cursor", "cursor must be the next_cursor of a search")
        if not isinstance(text, str) or not 1 <= len(text) <= 100:
            raise refused
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            fields = json.loads(raw)
        except (binascii.Error, ValueError):
            raise refused from None
        if not isinstance(fields, dict):
            raise refused
        offset, newest = fields.get("o"), fields.get("n")
        if not all(type(v) is int for v in (offset, newest)):
            raise refused
        assert isinstance(offset, int) and isinstance(newest, int)
        if not 0 < offset <= DEPTH_MAX or not 0 <= newest < 2**63:
            raise refused
        return Cursor(offset, newest)
