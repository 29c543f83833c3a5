"""The Origin check and the https question (web/origins.py), on plain ASGI scopes."""

from __future__ import annotations

import pytest
from starlette.requests import HTTPConnection

from chatroom.settings import Settings
from chatroom.web.origins import origin_allowed, parse_origin, served_over_https


def _conn(
    origin: str | None, *, host: str = "chat.example:8000", scheme: str = "http"
) -> HTTPConnection:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode("latin-1")))
    return HTTPConnection({"type": "http", "scheme": scheme, "headers": headers})


def _settings(**overrides: object) -> Settings:
    return Settings.model_validate(overrides)


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("https://Chat.Example", ("https", "chat.example", 443)),
        ("https://chat.example:443", ("https", "chat.example", 443)),
        ("http://chat.example:8000/", ("http", "chat.example", 8000)),
        ("http://[::1]:8000", ("http", "::1", 8000)),
    ],
)
def test_an_origin_is_scheme_host_and_port(text: str, origin: tuple[str, str, int]) -> None:
    assert parse_origin(text) == origin


@pytest.mark.parametrize(
    "text",
    [
        "http://[",  # a malformed IPv6 host: urlsplit raises
        "http://chat.example:99999",  # a port that is not one
        "http://chat.example:port",
        "null",
        "",
        "chat.example",
        "file:///etc/passwd",
        "ws://chat.example",
        "http://user@chat.example",
        "http://chat.example/path",
        "http://chat.example?x=1",
        "http://",
    ],
)
def test_what_is_not_an_origin_is_refused_not_an_error(text: str) -> None:
    assert parse_origin(text) is None
    assert origin_allowed(_conn(text), _settings()) is False


def test_the_own_origin_needs_the_same_scheme_host_and_port() -> None:
    settings = _settings()
    assert origin_allowed(_conn(None), settings)  # no Origin: the caller decides
    assert origin_allowed(_conn("http://chat.example:8000"), settings)
    assert origin_allowed(_conn("http://CHAT.example:8000"), settings)
    assert not origin_allowed(_conn("https://chat.example:8000"), settings)
    assert not origin_allowed(_conn("http://chat.example:8001"), settings)
    assert not origin_allowed(_conn("http://chat.example"), settings)
    assert not origin_allowed(_conn("http://evil.example:8000"), settings)
    # Default ports are the same as none; https as the proxy reports it.
    assert origin_allowed(_conn("http://chat.example", host="chat.example:80"), settings)
    assert origin_allowed(
        _conn("https://chat.example", host="chat.example", scheme="https"), settings
    )
    assert origin_allowed(
        _conn("https://chat.example", host="chat.example", scheme="wss"), settings
    )
    assert not origin_allowed(
        _conn("http://chat.example", host="chat.example", scheme="https"), settings
    )
    # A Host header that is not one matches nothing.
    assert not origin_allowed(_conn("http://[", host="["), settings)


def test_configured_origins_compare_the_same_way() -> None:
    settings = _settings(allowed_origins="https://chat.example, http://localhost:5173/")
    assert origin_allowed(_conn("https://chat.example"), settings)
    assert origin_allowed(_conn("https://chat.example:443"), settings)
    assert origin_allowed(_conn("http://localhost:5173"), settings)
    assert not origin_allowed(_conn("http://chat.example"), settings)
    assert not origin_allowed(_conn("http://chat.example:8000"), settings)  # its own host


def test_https_is_the_request_s_scheme_or_every_configured_origin() -> None:
    assert not served_over_https(_conn(None), _settings())
    assert served_over_https(_conn(None, scheme="https"), _settings())
    assert served_over_https(_conn(None, scheme="wss"), _settings())
    assert served_over_https(_conn(None), _settings(allowed_origins="https://chat.example"))
    mixed = _settings(allowed_origins="https://chat.example,http://localhost:5173")
    assert not served_over_https(_conn(None), mixed)
