"""Fuzzing ingest's HTTP API: query parameters and Authorization headers are hostile input.

Two targets: :meth:`EventQuery.parse` against a model of the documented forms written here (every
input either parses to what the model says or is refused with a short message), and the whole
ASGI app (the real Gatekeeper, Hazards and SQLite event store) fed raw query strings and headers
straight through ASGI, as uvicorn would pass them: the answer is always 200, 400 or 401 with a
JSON body, never a 500.

``make test`` runs a bounded, derandomized number of examples; ``make soak`` (marker ``soak``)
runs at least 100,000 inputs per target with fresh randomness.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import re
import threading
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from access import SECRETS, Access, make_credentials
from alerts import STATES
from devices import Registry
from firegrid._hazards import Hazards
from firegrid._http import MAX_LIMIT, QUERY_THREADS, ApiThreads, BadQuery, EventQuery, Gatekeeper, build_app
from rules import RulesConfig
from tests.helpers import write_registry

BOUNDED: Final = 300
SOAK_INPUTS: Final = 100_000
SOAK_ROUND: Final = 5_000
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

# -- inputs ---------------------------------------------------------------------------------------

names = st.one_of(
    st.sampled_from(EventQuery.PARAMETERS),
    st.sampled_from(["Grid", "grid ", "since_ms", "limit[]", "", "\x00", "state\n"]),
    st.text(max_size=12),
)
numbers = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.integers(min_value=0, max_value=10**40).map(str),
    st.text(alphabet="0123456789\u0660\u0661\uff11+-_ .eE\t", max_size=24),  # int() takes several
)
values = st.one_of(
    st.just(""),
    st.sampled_from([*STATES, "OPEN", " open", "closed\x00", "open;DROP TABLE events"]),
    st.from_regex(_ID, fullmatch=True),
    numbers,
    st.text(max_size=70),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=60, max_size=80),
)
identifiers = st.from_regex(_ID, fullmatch=True)
edges = st.sampled_from(
    [
        "0",
        "9" * 16,
        "1" * 17,
        "9223372036854775807",
        "9223372036854775808",
        "9" * 19,
        "9" * 40,
        "0" * 30 + "1",
    ]
)
valid = st.fixed_dictionaries(
    {},
    optional={
        "state": st.sampled_from(STATES),
        "district": identifiers,
        "grid": identifiers,
        "type": identifiers,
        "since": st.integers(min_value=0, max_value=10**16 - 1).map(str),
        "limit": st.integers(min_value=1, max_value=10**9 - 1).map(str),
    },
)


@st.composite
def one_hostile(draw: st.DrawFn) -> list[tuple[str, str]]:
    """A valid query with one parameter's value replaced by anything."""
    query = draw(valid)
    name = draw(st.sampled_from(EventQuery.PARAMETERS))
    numeric = name in ("since", "limit")
    query[name] = draw(st.one_of(edges, numbers) if numeric else st.one_of(edges, numbers, values))
    return list(draw(st.permutations(list(query.items()))))


items = st.one_of(
    one_hostile(),
    one_hostile(),
    valid.map(lambda d: list(d.items())),
    st.lists(st.tuples(names, values), max_size=7),
)


def query_string(pairs: Sequence[tuple[str, str]], raw_tail: bytes) -> bytes:
    encoded = "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in pairs).encode()
    return encoded + raw_tail


raw_tails = st.one_of(
    st.just(b""),
    st.just(b""),
    st.binary(max_size=40),
    st.sampled_from([b"&", b"&&", b"=", b"&grid", b"&since=%", b"&since=%zz", b"&state=%ff%fe", b";x=1"]),
)
headers = st.one_of(
    st.none(),
    st.binary(max_size=60).map(lambda b: b"Basic " + base64.b64encode(b)),
    st.binary(max_size=80),
    st.sampled_from([b"Basic", b"Basic ", b"basic Og==", b"Basic " + b"A" * 2000, b"Digest x"]),
)

# -- the model ------------------------------------------------------------------------------------


def model(pairs: Sequence[tuple[str, str]]) -> EventQuery | None:
    """What CONTRACT §9 and docs/SECURITY.md allow (None: 400), written apart from the parser."""
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name not in ("state", "district", "grid", "type", "since", "limit") or name in seen:
            return None
        seen[name] = value
    state = seen.get("state") or None
    if state is not None and state not in STATES:
        return None
    ids = {k: seen.get(k) or None for k in ("district", "grid", "type")}
    if any(v is not None and not _ID.fullmatch(v) for v in ids.values()):
        return None
    since = seen.get("since") or None
    if since is not None and not re.fullmatch(r"[0-9]{1,16}", since):
        return None
    limit = seen.get("limit") or "1000"
    if not re.fullmatch(r"[0-9]{1,9}", limit) or int(limit) < 1:
        return None
    return EventQuery(
        state=state,
        district=ids["district"],
        grid=ids["grid"],
        type=ids["type"],
        since_ms=None if since is None else int(since),
        limit=min(int(limit), MAX_LIMIT),
    )


def check_parse(pairs: list[tuple[str, str]]) -> None:
    expected = model(pairs)
    try:
        parsed = EventQuery.parse(pairs)
    except BadQuery as exc:
        assert expected is None, (pairs, exc)
        message = str(exc)
        assert 0 < len(message) <= 200 and "\n" not in message  # values are quoted with repr
        return
    assert parsed == expected, pairs


# -- the app, straight through ASGI ------------------------------------------------------------------


class _NoBroker:
    def publish(self, topic: str, payload: bytes, qos: int) -> object:
        return None


@dataclass
class Target:
    app: Starlette
    events: Hazards
    loop: asyncio.AbstractEventLoop
    authorizations: list[bytes]

    def get(
        self, path: bytes, query: bytes, authorization: bytes | None
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path.decode("latin-1"),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": [(b"host", b"testserver")]
            + ([(b"authorization", authorization)] if authorization is not None else []),
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8080),
        }
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        self.loop.run_until_complete(self.app(scope, receive, send))
        start = sent[0]
        body = b"".join(m.get("body", b"") for m in sent[1:])
        return start["status"], dict(start["headers"]), body


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("http-fuzz")
    registry_dir = write_registry(root / "registry")
    registry = Registry.load(registry_dir)
    make_credentials(registry_dir, root / "credentials")
    with (root / "credentials" / SECRETS).open(newline="") as handle:
        secrets = {row["principal"]: row["password"] for row in csv.DictReader(handle)}
    hazards = Hazards(registry, RulesConfig(), root / "data", _NoBroker())
    gate = Gatekeeper(root / "credentials", Access(registry))
    threads = ApiThreads()
    app = build_app(lambda: (200, {"status": "ok"}), lambda: b"", hazards, gate, threads)
    authorizations = [
        b"Basic " + base64.b64encode(f"{user}:{secrets[user]}".encode())
        for user in ("SUP1", "W0", "D01-ST1", "firegrid-console")
    ]
    loop = asyncio.new_event_loop()
    yield Target(app, hazards, loop, authorizations)
    loop.close()
    threads.close()
    gate.close()
    hazards.events.close()


def check_app(
    target: Target, pairs: list[tuple[str, str]], tail: bytes, who: int, header: bytes | None
) -> None:
    query = query_string(pairs, tail)
    authorization = target.authorizations[who] if who < len(target.authorizations) else header
    for path in (b"/events", b"/events/01JF0000000000000000000000"):
        status, response_headers, body = target.get(path, query, authorization)
        assert response_headers[b"content-type"] == b"application/json", (status, body)
        document = orjson.loads(body)
        if who < len(target.authorizations):
            if path == b"/events":
                assert status in (200, 400), (query, status, body)
                assert (status == 200) == isinstance(document, list), document
            else:  # the id route reads no query parameters
                assert (status, document) == (404, {"error": "no event 01JF0000000000000000000000"})
        else:
            assert status == 401, (header, status, body)
            assert response_headers[b"www-authenticate"] == b'Basic realm="firegrid"'
        if status >= 400:
            assert set(document) == {"error"} and len(document["error"]) <= 200


who_strategy = st.integers(min_value=0, max_value=5)  # 4 and 5: the fuzzed header instead

# -- bounded (make test) -------------------------------------------------------------------------------


@settings(max_examples=BOUNDED, derandomize=True, database=None, deadline=None, suppress_health_check=_HEALTH)
@given(pairs=items)
def test_parse_accepts_exactly_the_documented_forms(pairs: list[tuple[str, str]]) -> None:
    check_parse(pairs)


def test_app_answers_hostile_queries_and_headers_without_a_500(target: Target) -> None:
    @settings(
        max_examples=BOUNDED, derandomize=True, database=None, deadline=None, suppress_health_check=_HEALTH
    )
    @given(pairs=items, tail=raw_tails, who=who_strategy, header=headers)
    def run(pairs: list[tuple[str, str]], tail: bytes, who: int, header: bytes | None) -> None:
        check_app(target, pairs, tail, who, header)

    run()


def test_requests_run_on_the_fixed_api_threads(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    """The event store keeps one SQLite connection per thread until it closes: handlers must run on
    the few long-lived API threads, never on a pool whose threads come and go (a soak run of the
    app on anyio's pool ran out of file descriptors)."""
    names: set[str] = set()
    hazards = target.events
    visible = hazards.visible_events

    def spy(seen: Any, query: EventQuery) -> list[dict[str, Any]]:
        names.add(threading.current_thread().name)
        return visible(seen, query)

    monkeypatch.setattr(hazards, "visible_events", spy)
    for i in range(200):
        status, _, _ = target.get(b"/events", f"limit={i + 1}".encode(), target.authorizations[i % 4])
        assert status == 200
    assert names and all(name.startswith("http-worker") for name in names), names
    assert len(names) <= QUERY_THREADS


def test_parse_examples() -> None:
    """A few fixed cases that the model and the docs name."""
    assert EventQuery.parse([]) == EventQuery()
    assert EventQuery.parse([("state", ""), ("grid", "")]) == EventQuery()
    assert EventQuery.parse([("limit", "99999")]).limit == MAX_LIMIT
    assert EventQuery.parse([("since", "0")]).since_ms == 0
    for pairs in ([("since", "١٢")], [("since", " 12")], [("limit", "+5")], [("grid", "a" * 65)]):
        with pytest.raises(BadQuery):
            EventQuery.parse(pairs)


# -- soak (make soak) --------------------------------------------------------------------------------


@dataclass
class Tally:
    inputs: int = 0


def _soak(run_round: Any, tally: Tally) -> int:
    """Rounds of fresh examples (each a new hypothesis engine: bounded memory) until enough ran."""
    while tally.inputs < SOAK_INPUTS:
        run_round()
    return tally.inputs


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_parse() -> None:
    @settings(max_examples=SOAK_ROUND, database=None, deadline=None, suppress_health_check=_HEALTH)
    @given(pairs=items)
    def run(pairs: list[tuple[str, str]]) -> None:
        tally.inputs += 1
        check_parse(pairs)

    tally = Tally()
    print(f"EventQuery.parse: {_soak(run, tally):,} inputs")


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_app(target: Target) -> None:
    @settings(max_examples=SOAK_ROUND, database=None, deadline=None, suppress_health_check=_HEALTH)
    @given(pairs=items, tail=raw_tails, who=who_strategy, header=headers)
    def run(pairs: list[tuple[str, str]], tail: bytes, who: int, header: bytes | None) -> None:
        tally.inputs += 1
        check_app(target, pairs, tail, who, header)

    tally = Tally()
    print(f"the app: {_soak(run, tally):,} inputs (two requests each)")
