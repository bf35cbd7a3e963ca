"""The simulated workers' policy and decisions (no broker): deterministic under the seed, the
distributions' parameters, the ignored share, the profiles, who takes and who closes, the schedule
at a time scale, the ``respond:`` block of a scenario file and the ``--respond`` flags."""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import orjson
import pytest

from devices import Registry, ScenarioError, Topics
from firegrid import cli_simulate
from simulators import (
    EventLeftAlone,
    Handlers,
    Handling,
    LeftAlone,
    Lognormal,
    Responders,
    RespondPolicy,
    ResponseRecord,
    RunOptions,
    SlowWorkers,
    load_scenario,
    write_world,
)
from simulators._respond_plan import EventKey
from tests.helpers import write_registry

DEADLINE_S = {"critical": 120.0, "major": 1800.0, "minor": 8 * 3600.0}
"""CONTRACT §8's escalation deadlines."""
EXACT = RespondPolicy(ignore=0.0, silent=0.0, slow=SlowWorkers(share=0.0))
"""No one ignores, no slow or silent workers: every draw is the distributions' own."""


@pytest.fixture(autouse=True)
def _no_firegrid_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("FIREGRID_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The reference district: 1089 grids, 860 workers (17 supervisors)."""
    out = tmp_path_factory.mktemp("district")
    write_world(out, scale=1.0, seed=3)
    return Registry.load(out)


def decide_with(handlers: Handlers, events: list[EventKey]) -> list[Handling | LeftAlone]:
    return [handlers.decide(key) for key in events]


def keys(registry: Registry, per_grid: int = 4) -> list[EventKey]:
    return [
        ("FIRE_ALARM", grid_id, f"{grid_id}-SD{n}")
        for grid_id in sorted(registry.grids)
        for n in range(per_grid)
    ]


def decide(registry: Registry, policy: RespondPolicy, events: list[EventKey]) -> list[Handling | LeftAlone]:
    return decide_with(Handlers(registry, policy), events)


def handled(handlers: Handlers, events: list[EventKey]) -> list[Handling]:
    out = [handlers.decide(key) for key in events]
    return [d for d in out if isinstance(d, Handling)]


def log_spread(values: list[float]) -> tuple[float, float]:
    """The median and the standard deviation of the logarithm."""
    return statistics.median(values), statistics.pstdev([math.log(v) for v in values])


def test_same_seed_same_decisions_and_another_seed_others(district: Registry) -> None:
    events = keys(district, 1)
    first = decide(district, RespondPolicy(), events)
    again = decide(district, RespondPolicy(), events)
    other = decide(district, RespondPolicy(seed=2), events)
    assert first == again
    assert first != other
    # a second occurrence of one event gets its own draws, the same ones in every run
    handlers, repeat = Handlers(district, EXACT), Handlers(district, EXACT)
    once, twice = handlers.decide(events[0]), handlers.decide(events[0])
    assert once != twice
    assert [repeat.decide(events[0]), repeat.decide(events[0])] == [once, twice]


def test_delays_follow_their_lognormal_medians_and_sigmas(district: Registry) -> None:
    policy = EXACT.model_copy(
        update={
            "ack": Lognormal(median=45, sigma=0.8),
            "resolve": Lognormal(median=3600, sigma=1.0),
            "close": Lognormal(median=600, sigma=0.3),
        }
    )
    taken = handled(Handlers(district, policy), keys(district))
    assert len(taken) == 4 * len(district.grids)  # nothing left alone
    for values, delay in (
        ([h.ack_s for h in taken], policy.ack),
        ([h.resolve_s for h in taken], policy.resolve),
        ([h.close_s for h in taken], policy.close),
    ):
        median, sigma = log_spread(values)
        assert median == pytest.approx(delay.median, rel=0.06), delay
        assert sigma == pytest.approx(delay.sigma, rel=0.05), delay


def test_the_ignored_share_is_left_alone(district: Registry) -> None:
    policy = EXACT.model_copy(update={"ignore": 0.2})
    decisions = decide(district, policy, keys(district))
    ignored = [d for d in decisions if isinstance(d, LeftAlone)]
    assert {d.reason for d in ignored} == {"ignored"}
    assert len(ignored) / len(decisions) == pytest.approx(0.2, abs=0.02)
    assert not [d for d in decisions if isinstance(d, LeftAlone)] or all(d.worker_id is None for d in ignored)


def test_slow_and_silent_workers(district: Registry) -> None:
    policy = EXACT.model_copy(update={"silent": 0.1, "slow": SlowWorkers(share=0.2, factor=5)})
    handlers = Handlers(district, policy)
    plain = [w for w, worker in district.workers.items() if not worker.is_supervisor]
    profiles = [handlers.profiles[w] for w in plain]
    assert profiles.count("silent") / len(plain) == pytest.approx(0.1, abs=0.03)
    assert profiles.count("slow") / len(plain) == pytest.approx(0.2, abs=0.04)
    assert {handlers.profiles[w] for w, worker in district.workers.items() if worker.is_supervisor} == {
        "normal"
    }
    decisions = [handlers.decide(key) for key in keys(district)]
    silent = [d for d in decisions if isinstance(d, LeftAlone)]
    assert silent and all(
        d.reason == "silent_worker" and handlers.profiles[d.worker_id or ""] == "silent" for d in silent
    )
    taken = [d for d in decisions if isinstance(d, Handling)]
    slow = [d for d in taken if d.profile == "slow"]
    normal = [d for d in taken if d.profile == "normal"]
    assert all(handlers.profiles[d.worker_id] == d.profile for d in taken)
    for attribute, delay in (("ack_s", policy.ack), ("resolve_s", policy.resolve)):
        assert log_spread([getattr(d, attribute) for d in slow])[0] == pytest.approx(
            5 * delay.median, rel=0.15
        )
        assert log_spread([getattr(d, attribute) for d in normal])[0] == pytest.approx(delay.median, rel=0.08)
    # the supervisors' closing is nobody's profile
    assert log_spread([d.close_s for d in slow])[0] == pytest.approx(policy.close.median, rel=0.15)


def test_a_worker_of_the_grid_takes_it_and_only_a_supervisor_closes(district: Registry) -> None:
    handlers = Handlers(district, EXACT)
    workers = district.workers
    for decision, (_type, grid_id, _who) in zip(
        [handlers.decide(key) for key in keys(district, 1)], keys(district, 1), strict=True
    ):
        grid = district.grids[grid_id]
        if not grid.workers:
            assert decision == LeftAlone("no_workers")
            continue
        assert isinstance(decision, Handling)
        assert decision.worker_id in grid.workers
        plain = [w for w in grid.workers if not workers[w].is_supervisor]
        assert not workers[decision.worker_id].is_supervisor or not plain
        assert decision.closer is not None and workers[decision.closer].is_supervisor
        listed = [w for w in grid.workers if workers[w].is_supervisor]
        assert decision.closer in listed or not listed


def test_grids_without_workers_and_supervisors_elsewhere(tmp_path: Path) -> None:
    root = write_registry(tmp_path / "registry")
    grids = json.loads((root / "grids.geojson").read_text())
    grids["features"][1]["properties"]["workers"] = []  # D01-G01 has nobody
    (root / "grids.geojson").write_text(json.dumps(grids))
    registry = Registry.load(root)
    handlers = Handlers(registry, EXACT)
    assert handlers.decide(("TAMPER", "D01-G01", "S0001")) == LeftAlone("no_workers")
    assert handlers.decide(("TAMPER", "_unassigned", "S0001")) == LeftAlone("no_workers")
    # D01-G03 lists only W3: SUP1, listed on the district's other grids, closes its events
    decision = handlers.decide(("TAMPER", "D01-G03", "S0002"))
    assert isinstance(decision, Handling)
    assert (decision.worker_id, decision.closer) == ("W3", "SUP1")


def test_the_default_policy_acks_most_events_on_time_and_handles_90_percent_in_8_hours(
    district: Registry,
) -> None:
    decisions = decide(district, RespondPolicy(), keys(district))
    taken = [d for d in decisions if isinstance(d, Handling)]
    left = len(decisions) - len(taken)
    assert 0.03 <= left / len(decisions) <= 0.08  # ignored, and the silent workers' events
    for severity, (low, high) in {
        "critical": (0.7, 0.9),
        "major": (0.93, 0.99),
        "minor": (0.93, 0.99),
    }.items():
        on_time = sum(1 for d in taken if d.ack_s < DEADLINE_S[severity]) / len(decisions)
        assert low <= on_time <= high, (severity, on_time)
    within_8h = sum(1 for d in taken if d.ack_s + d.resolve_s <= 8 * 3600) / len(decisions)
    assert 0.85 <= within_8h <= 0.95, within_8h


# -- the schedule ----------------------------------------------------------------------------------


def responders(
    registry: Registry, policy: RespondPolicy, time_scale: float
) -> tuple[Responders, list[ResponseRecord]]:
    records: list[ResponseRecord] = []
    passwords = dict.fromkeys(registry.workers, "pw")
    made = Responders(
        registry,
        host="127.0.0.1",
        port=1,
        passwords=passwords,
        policy=policy,
        prefix="t/",
        time_scale=time_scale,
        sink=records.append,
    )
    return made, records


def alert(event_id: str, grid_id: str, state: str = "open", device: str = "S0000") -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": "TAMPER",
            "severity": "major",
            "state": state,
            "grid_id": grid_id,
            "device_id": device,
            "raised_at": 1_700_000_000_000,
        }
    )


def test_an_open_alert_is_scheduled_the_delay_over_the_time_scale_after_it_arrived(tmp_path: Path) -> None:
    registry = Registry.load(write_registry(tmp_path / "registry"))
    policy = EXACT.model_copy(update={"ack": Lognormal(median=100, sigma=0.5)})
    made, records = responders(registry, policy, time_scale=20)
    topic = Topics("t/").grid("D01", "D01-G00")
    before = int(time.time() * 1000)
    made._on_message(0, topic, alert("E1", "D01-G00"))
    after = int(time.time() * 1000)
    made._on_message(0, topic, alert("E1", "D01-G00"))  # a repeat (another worker of the grid)
    made._on_message(0, topic, alert("E2", "D01-G00", state="acknowledged", device="S0001"))
    made._on_message(0, topic, b"not json")
    decision = Handlers(registry, policy).decide(("TAMPER", "D01-G00", "S0000"))
    assert isinstance(decision, Handling)
    [(due, worker, action, event_id)] = made.scheduled()
    assert (worker, action, event_id) == (decision.worker_id, "ack", "E1")
    # counted from the alert's arrival (ingest's clock starts the deadline), not from raised_at
    assert before + round(decision.ack_s * 1000 / 20) <= due <= after + round(decision.ack_s * 1000 / 20)
    assert records == []


def test_events_left_alone_are_ground_truth_at_once(tmp_path: Path) -> None:
    registry = Registry.load(write_registry(tmp_path / "registry"))
    made, records = responders(registry, EXACT.model_copy(update={"ignore": 1.0}), time_scale=1)
    made._on_message(0, Topics("t/").grid("D01", "D01-G01"), alert("E9", "D01-G01"))
    assert made.scheduled() == []
    assert len(records) == 1 and isinstance(records[0], EventLeftAlone)
    line = orjson.loads(records[0].line())
    seen_at = line.pop("seen_at")
    assert isinstance(seen_at, int) and seen_at > 1_700_000_000_000
    assert line == {
        "truth": "ignored",
        "event_id": "E9",
        "grid_id": "D01-G01",
        "type": "TAMPER",
        "severity": "major",
        "raised_at": 1_700_000_000_000,
        "reason": "ignored",
        "worker_id": None,
    }


# -- the scenario's respond: block and the command line --------------------------------------------


def scenario(tmp_path: Path, respond: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nsteps: [{{action: tamper}}]\n{respond}")
    return path


def test_the_respond_block(tmp_path: Path) -> None:
    assert load_scenario(scenario(tmp_path, "")).respond is None
    assert load_scenario(scenario(tmp_path, "respond: true\n")).respond == RespondPolicy()
    assert load_scenario(scenario(tmp_path, "respond: false\n")).respond is None
    block = "respond:\n  ack: {median: 2m, sigma: 0.5}\n  ignore: 0.1\n  slow: {share: 0.3}\n  linger: 5\n"
    policy = load_scenario(scenario(tmp_path, block)).respond
    assert policy == RespondPolicy(
        ack=Lognormal(median=120, sigma=0.5), ignore=0.1, slow=SlowWorkers(share=0.3), linger=5
    )


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("respond: {ack: {median: 0}}", "respond.ack.median: Input should be greater than 0"),
        (
            "respond: {ack: {median: 1m, distribution: normal}}",
            "respond.ack.distribution: Input should be 'lognormal'",
        ),
        ("respond: {ignore: 1.5}", "respond.ignore: Input should be less than or equal to 1"),
        (
            "respond: {silent: 0.5, slow: {share: 0.6}}",
            "respond: slow.share 0.6 and silent 0.5 add up to more than 1",
        ),
        ("respond: {acknowledge: 5}", "respond.acknowledge: Extra inputs are not permitted"),
        (
            "respond: {resolve: {median: soon}}",
            "respond.resolve.median: 'soon' is not a duration",
        ),
    ],
)
def test_a_bad_respond_block_names_the_file_and_key(tmp_path: Path, block: str, problem: str) -> None:
    path = scenario(tmp_path, block + "\n")
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    assert str(error.value).startswith(f"{path}: {problem}")


def test_respond_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def options(*argv: str) -> RunOptions:
        parser = argparse.ArgumentParser(prog="firegrid")
        cli_simulate.add_parser(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["simulate", "run", "--registry", "reg", *argv])
        settings = cli_simulate.load_run_settings(args.config, args.url, args.prefix, args.credentials)
        return cli_simulate.run_options(args, settings)

    assert options().respond is None  # the scenario's block decides
    assert options("--respond").respond is True
    assert options("--respond").respond_credentials == Path("credentials")
    monkeypatch.setenv("FIREGRID_CREDENTIALS", "/srv/credentials")
    chosen = options("--respond", "--credentials", "/tmp/c")
    assert (chosen.respond_credentials, chosen.credentials) == (Path("/tmp/c"), None)


def test_respond_without_passwords_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = write_registry(tmp_path / "registry")
    credentials = tmp_path / "credentials"
    base = ["simulate", "run", "--registry", str(registry), "--url", "mqtt://127.0.0.1:1", "--no-progress"]
    assert cli_simulate.main([*base, "--respond", "--credentials", str(credentials)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"firegrid simulate: error: no {credentials / 'secrets.csv'}: "
    )
    credentials.mkdir()
    (credentials / "secrets.csv").write_text("principal,role,password\nW0,worker,pw\n")
    with_block = scenario(tmp_path, "respond: {}\n")
    assert cli_simulate.main([*base, "--scenario", str(with_block), "--credentials", str(credentials)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    secrets = credentials / "secrets.csv"
    assert err[0].startswith(
        f"firegrid simulate: error: {secrets} has no password for 4 workers (SUP1, W1, W2, W3)"
    )


def test_grids_a_person_works_are_left_to_them(district: Registry) -> None:
    """The demo's invited worker and supervisor are people: their grid's events are left to them,
    and the supervisor closes nothing the simulated workers handle."""
    grid = next(g for g in district.grids.values() if len(g.workers) >= 2)
    person = next(w for w in grid.workers if not district.workers[w].is_supervisor)
    boss = sorted(w for w, worker in district.workers.items() if worker.is_supervisor)[0]
    handlers = Handlers(district, EXACT, frozenset({person, boss}))
    assert handlers.decide(("FIRE_ALARM", grid.grid_id, "SD1")) == LeftAlone("human")
    others = [d for d in decide_with(handlers, keys(district, per_grid=1)) if isinstance(d, Handling)]
    assert others and all(d.worker_id != person and d.closer != boss for d in others)
