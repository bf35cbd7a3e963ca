"""HTTP Basic: every hostile header is a refusal (None), never an exception."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from access import MAX_HEADER, Credentials, parse_basic


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


def test_parses_user_and_password() -> None:
    assert parse_basic(basic(b"W1:pa:ss word")) == Credentials("W1", "pa:ss word")
    assert parse_basic("basic " + base64.b64encode(b"W1:x").decode()) == Credentials("W1", "x")
    assert parse_basic(basic(b"W1:x").encode()) == Credentials("W1", "x")
    assert parse_basic("  Basic   " + base64.b64encode(b"W1:x").decode() + " ") == Credentials("W1", "x")
    assert parse_basic(basic("wörker:pässword".encode())) == Credentials("wörker", "pässword")


def test_password_not_in_repr() -> None:
    assert "hunter2" not in repr(Credentials("W1", "hunter2"))


def test_refusals() -> None:
    for header in (
        None,
        "",
        "Basic",
        "Basic ",
        "Bearer abc",
        "Digest " + base64.b64encode(b"W1:x").decode(),
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"W1:x").decode()[:-1],  # bad padding
        basic(b"no colon"),
        basic(b":password only"),
        basic(b"W1:"),
        basic(b"\xff\xfe:latin"),
        basic(b"W1:\xc3"),
        basic(b"W\n1:x"),
        basic(b"W\x001:x"),
        "Basic " + "QQ" * MAX_HEADER,
        "Basic " + base64.b64encode(b"W1:x").decode().replace("=", "é"),
        b"Basic \xff\xfe",
    ):
        assert parse_basic(header) is None, header


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), st.binary(max_size=200).map(basic)))
def test_hostile_input_never_raises(header: str | bytes) -> None:
    result = parse_basic(header)
    assert result is None or (result.user and result.password)


@settings(max_examples=200, deadline=None)
@given(
    st.text(min_size=1, max_size=64).filter(lambda u: ":" not in u and all(ord(c) >= 0x20 for c in u)),
    st.text(min_size=1, max_size=64),
)
def test_round_trip_of_valid_credentials(user: str, password: str) -> None:
    header = basic(f"{user}:{password}".encode())
    if len(header) <= MAX_HEADER and "\x7f" not in user:
        assert parse_basic(header) == Credentials(user, password)
