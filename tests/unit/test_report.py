"""`firegrid report`'s parts: the month (parsing, the times it is evaluated at), the SVG chart, the
ordering of grids and hazards, and the whole report on a real event store (alerts' own store
driven with hits and worker actions; the figures must be safety's `/sla` for the month)."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerts import EventStore
from devices import Registry
from firegrid._report import build_report, open_hazards, rank_grids, worst_grids
from firegrid._report_chart import BOTTOM, HEIGHT, TOP, Axis, Series, line_chart, path_data, y
from firegrid._report_html import figure, render
from firegrid._report_month import DAY_MS, Month
from safety import EVERYTHING, FIGURES, GROUPS, Safety, Selection, SlaQuery
from tests.unit.alerts.conftest import (  # noqa: F401 (fixtures)
    T0,
    FakePublisher,
    HitFactory,
    db_path,
    hit,
    publisher,
    registry,
    registry_path,
)
from tests.unit.safety.conftest import act, raise_event, safety, store  # noqa: F401 (fixtures)

MIN = 60_000
HOUR = 3_600_000


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


NOW = ms(2026, 3, 14, 15, 30)
DECEMBER = Month.parse("2025-12", NOW)
"""The month of alerts' test clock T0 (2025-12-01 10:00 UTC)."""


# -- the month --------------------------------------------------------------------------------------


def test_a_month_is_yyyy_mm_in_utc() -> None:
    march = Month.parse("2025-03", NOW)
    assert (march.start_ms, march.end_ms, march.days) == (ms(2025, 3, 1), ms(2025, 4, 1), 31)
    assert march.label == "March 2025" and march.text == "2025-03"
    december = Month.parse("2025-12", NOW)
    assert december.end_ms == ms(2026, 1, 1)
    assert Month.parse("2024-02", NOW).days == 29 and Month.parse("2025-02", NOW).days == 28


@pytest.mark.parametrize(
    "text", ["2025-3", "2025-13", "2025-00", "25-03", "2025-03-01", "march", "", " 2025-03"]
)
def test_anything_else_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(ValueError, match=r"^month must be YYYY-MM \(e\.g\. 2025-03\), not ") as caught:
        Month.parse(text, NOW)
    assert "\n" not in str(caught.value)


def test_a_month_in_the_future_is_refused_the_running_one_is_not() -> None:
    with pytest.raises(ValueError, match=r"^month 2026-04 lies in the future$"):
        Month.parse("2026-04", NOW)
    running = Month.parse("2026-03", NOW)
    assert running.running(NOW) and running.cut_ms(NOW) == NOW
    assert Month.parse("2026-03", ms(2026, 3, 1)).day_ends(ms(2026, 3, 1)) == [ms(2026, 3, 1)]


def test_the_trend_is_taken_at_each_days_end_and_a_running_month_stops_at_now() -> None:
    past = Month.parse("2026-02", NOW)
    ends = past.day_ends(NOW)
    assert len(ends) == 28 and ends[0] == ms(2026, 2, 2) and ends[-1] == past.end_ms == past.cut_ms(NOW)
    assert not past.running(NOW)
    running = Month.parse("2026-03", NOW)
    ends = running.day_ends(NOW)
    assert len(ends) == 14 and ends[-2] == ms(2026, 3, 14) and ends[-1] == NOW
    midnight = ms(2026, 3, 14)
    assert running.day_ends(midnight)[-1] == midnight and len(running.day_ends(midnight)) == 13
    assert all(b - a == DAY_MS for a, b in itertools.pairwise(ends[:-1]))


# -- the chart --------------------------------------------------------------------------------------

AXIS = Axis(0, 4 * DAY_MS, [(DAY_MS, "1"), (2 * DAY_MS, "2")])
XS = [DAY_MS, 2 * DAY_MS, 3 * DAY_MS, 4 * DAY_MS]


def test_scores_map_to_the_plot_and_a_missing_value_breaks_the_line() -> None:
    assert y(100.0) == TOP and y(0.0) == HEIGHT - BOTTOM and y(150.0) == TOP
    assert y(50.0) == pytest.approx((TOP + HEIGHT - BOTTOM) / 2)
    assert path_data(AXIS, XS, [10.0, 20.0, 30.0, 40.0]).count("M") == 1
    broken = path_data(AXIS, XS, [10.0, None, 30.0, 40.0])
    assert broken.count("M") == 2 and broken.count("L") == 1
    assert path_data(AXIS, XS, [None, None, None, None]) == ""
    xs = [float(x) for x in re.findall(r"[ML]([\d.]+),", path_data(AXIS, XS, [1.0, 2.0, 3.0, 4.0]))]
    assert xs == sorted(xs) and xs[-1] == pytest.approx(AXIS.x(4 * DAY_MS))


def test_the_chart_is_plain_inline_svg_with_escaped_labels() -> None:
    series = [
        Series("<mean & co>", [50.0, 60.0, None, 70.0], emphasis=True),
        Series("G1", [1.0, 2.0, 3.0, 4.0]),
    ]
    svg = str(line_chart('Index "D01"', AXIS, XS, series))
    assert svg.startswith('<svg class="chart" viewBox=') and svg.endswith("</svg>")
    assert "&lt;mean &amp; co&gt;" in svg and "<mean" not in svg
    assert svg.count('<g class="series"') == 2 and svg.count("<circle") == 7
    assert svg.index('data-label="G1"') < svg.index('data-label="&lt;mean')  # the mean on top
    assert not re.search(r"<script|href|src=|url\(|http", svg)


# -- ordering ---------------------------------------------------------------------------------------


def answer(index: float | None) -> dict[str, Any]:
    return {"index": index, "groups": {name: {"score": index} for name in GROUPS}}


def test_grids_rank_least_safe_first_equal_ones_share_a_place() -> None:
    indexes = {
        "G5": answer(10.0),
        "G4": answer(80.0),
        "G3": answer(None),
        "G2": answer(80.0),
        "G1": answer(50.0),
    }
    ranking = rank_grids(indexes, {"G1": "One"})
    assert [(g.grid_id, g.rank) for g in ranking] == [
        ("G5", 1),
        ("G1", 2),
        ("G2", 3),
        ("G4", 3),
        ("G3", None),
    ]
    assert ranking[1].name == "One" and ranking[0].name == "" and list(ranking[1].groups) == list(GROUPS)
    assert [g.grid_id for g in worst_grids(ranking, 3)] == ["G5", "G1", "G2"]
    assert [g.grid_id for g in worst_grids(ranking)] == ["G5", "G1", "G2", "G4"]  # never one without an index


def test_open_hazards_are_the_unresolved_ones_most_severe_then_oldest(
    store: EventStore,  # noqa: F811
    safety: Safety,  # noqa: F811
    hit: HitFactory,  # noqa: F811
    registry: Registry,  # noqa: F811
) -> None:
    old_major = raise_event(store, hit, "E0000", "CABLE_OVERHEAT", "major", T0)
    fire = raise_event(store, hit, "S0000", "FIRE_ALARM", "critical", T0 + HOUR)
    acked = raise_event(store, hit, "S0001", "TAMPER", "major", T0 + 2 * HOUR)
    act(store, "W0", acked, "ack", T0 + 2 * HOUR + MIN)
    resolved = raise_event(store, hit, "W0000", "PRESSURE_LOSS", "critical", T0)
    act(store, "W0", resolved, "ack", T0 + MIN)
    act(store, "W0", resolved, "resolve", T0 + 2 * MIN)
    raise_event(store, hit, "S0002", "LOW_BATTERY", "minor", T0)  # the devices' health: no hazard
    cut = T0 + 3 * HOUR
    events = safety.history.not_closed(Selection(district="D01"), cut, now_ms=cut)
    hazards = open_hazards(events, registry, cut)
    assert [h.event_id for h in hazards] == [fire, old_major, acked]
    assert [(h.state, h.escalated) for h in hazards] == [
        ("open", True),
        ("open", True),
        ("acknowledged", False),
    ]
    assert hazards[0].site_id == "S0" and hazards[0].device_id == "S0000" and hazards[0].grid_id == "D01-G00"
    # a minute in: the pressure loss acknowledged in time, still unresolved; the overheat not yet due
    early = open_hazards(safety.history.not_closed(Selection(), T0 + MIN, now_ms=cut), registry, T0 + MIN)
    assert [(h.event_id, h.state, h.escalated) for h in early] == [
        (resolved, "acknowledged", False),
        (old_major, "open", False),
    ]


# -- the whole report -------------------------------------------------------------------------------


def test_the_report_of_a_month_with_events(
    store: EventStore,  # noqa: F811
    safety: Safety,  # noqa: F811
    hit: HitFactory,  # noqa: F811
    registry: Registry,  # noqa: F811
) -> None:
    fire = raise_event(store, hit, "S0000", "FIRE_ALARM", "critical", T0)
    act(store, "W0", fire, "ack", T0 + MIN)
    act(store, "W0", fire, "resolve", T0 + HOUR)
    raise_event(store, hit, "E0001", "CABLE_OVERHEAT", "major", T0 + DAY_MS)  # left open
    report = build_report(safety, registry, "D01", DECEMBER, NOW)
    assert report.cut_ms == DECEMBER.end_ms and not report.running
    assert len(report.trend.ats) == 31 and len(report.trend.mean) == 31
    assert report.ranking[0] == report.worst[0].grid
    assert sorted(g.grid_id for g in report.ranking) == sorted(registry.grids)
    sla = safety.sla(
        EVERYTHING,
        SlaQuery(district="D01", since_ms=DECEMBER.start_ms, until_ms=DECEMBER.end_ms, at_ms=DECEMBER.end_ms),
    )
    assert report.total == sla["total"] and report.total["raised"] == 2
    assert {row.grid_id: row.figures for row in report.figures} == sla["grids"]
    worst = report.worst[0]
    assert [h.type for h in worst.hazards] == ["CABLE_OVERHEAT"] and worst.grid.grid_id == "D01-G00"

    html = render(report)
    assert "District D01" in html and "December 2025" in html and "No events" not in html
    total = re.search(r'<tr class="total".*?</tr>', html, re.S)
    assert total is not None
    for name in FIGURES:
        assert f'data-figure="{name}" data-value="' in total.group(0)
        assert f">{figure(report.total[name], name)}</td>" in total.group(0)
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html) and "<script" not in html


def test_an_empty_month_renders_with_no_events(safety: Safety, registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    report = build_report(safety, registry, "D01", DECEMBER, NOW)
    assert report.total["raised"] == 0 and all(g.index == 100.0 for g in report.ranking)
    assert all(not w.hazards for w in report.worst)
    html = render(report)
    assert "No events: nothing was raised in D01 in December 2025." in html
    assert "No unresolved hazard at the month" in html


def test_a_running_month_stops_at_now(safety: Safety, registry: Registry) -> None:  # noqa: F811
    now = T0 + 3 * DAY_MS + HOUR
    report = build_report(safety, registry, "D01", DECEMBER, now)
    assert report.running and report.cut_ms == now and report.trend.ats[-1] == now
    assert len(report.trend.ats) == 4
    assert "the month is still running" in render(report)


# -- the command: bad input is one line on stderr and exit code 2 -----------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from firegrid.cli import main

    code = main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, registry_path: Path, tmp_path: Path) -> Path:  # noqa: F811
    for name in [n for n in __import__("os").environ if n.startswith("FIREGRID_")]:
        monkeypatch.delenv(name)
    data = tmp_path / "data"
    monkeypatch.setenv("FIREGRID_DATA_DIR", str(data))
    monkeypatch.setenv("FIREGRID_REGISTRY", str(registry_path))
    return data


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--district", "D09", "--month", "2025-12"),
            "the registry .* has no district 'D09' \\(it has D01\\)",
        ),
        (("--district", "D01", "--month", "2025-1"), "month must be YYYY-MM"),
        (("--district", "D01", "--month", "2999-01"), "month 2999-01 lies in the future"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    capsys: pytest.CaptureFixture[str],
    settings_env: Path,
    store: EventStore,  # noqa: F811
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    out = tmp_path / "report.html"
    code, _, err = run_cli(capsys, *args, "--out", str(out))
    assert code == 2 and re.fullmatch(f"firegrid report: {message}.*\\n", err), err
    assert not out.exists()


def test_no_data_dir_or_no_event_store_is_exit_code_2(
    capsys: pytest.CaptureFixture[str], settings_env: Path, tmp_path: Path
) -> None:
    args = ("--district", "D01", "--month", "2025-12", "--out", str(tmp_path / "r.html"))
    code, _, err = run_cli(capsys, *args)
    assert (
        code == 2 and err == f"firegrid report: data directory {settings_env} not found (FIREGRID_DATA_DIR)\n"
    )
    settings_env.mkdir()
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and err.startswith(f"firegrid report: no event store in {settings_env} (events.sqlite")
    assert err.count("\n") == 1


def test_the_command_writes_the_report(
    capsys: pytest.CaptureFixture[str],
    settings_env: Path,
    store: EventStore,  # noqa: F811
    hit: HitFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    raise_event(store, hit, "S0000", "FIRE_ALARM", "critical", T0)
    out = tmp_path / "report.html"
    code, printed, err = run_cli(capsys, "--district", "D01", "--month", "2025-12", "--out", str(out))
    assert code == 0 and err == "", err
    assert printed.startswith(f"{out}: D01, December 2025: 4 grids, 1 events (")
    assert "FIRE_ALARM" in out.read_text() and not list(tmp_path.glob(".*.partial"))
