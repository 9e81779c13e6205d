"""Recording a source to JSON lines and replaying it; corrupt files fail with the line number."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tui.errors import UserError
from tui.sources.replay import RecordingSource, ReplaySource, load_recording
from tui.sources.synthetic import SyntheticSource

REPO = Path(__file__).resolve().parents[2]


def record(path: Path, ticks: int = 5) -> list:
    recorder = RecordingSource(SyntheticSource(seed=5, interval_s=0.5), path)
    recorder.start()
    snaps = [recorder.poll() for _ in range(ticks)]
    recorder.close()
    return snaps


def test_replay_gives_back_exactly_what_was_recorded(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    recorded = record(path)
    assert len(path.read_text().splitlines()) == 1 + len(recorded)
    source = ReplaySource.open(path)
    source.start()
    replayed = []
    while (snap := source.poll()) is not None:
        replayed.append(snap)
    source.close()
    assert replayed == recorded


def test_replay_pace_follows_recorded_time_and_speed(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    record(path, ticks=3)
    source = ReplaySource.open(path, speed=4.0)
    source.start()
    source.poll()
    # the next snapshot was recorded 0.5 s after the first; at 4x it comes 0.125 s later
    assert source.interval_s == pytest.approx(0.125)


def test_recording_survives_a_crash_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    recorder = RecordingSource(SyntheticSource(), path)
    recorder.start()
    recorder.poll()
    recorder.poll()
    # not closed: every written line must already be complete and readable
    interval, snaps = load_recording(path)
    assert interval == 0.5
    assert [s.seq for s in snaps] == [1, 2]
    recorder.close()


def test_truncated_file_names_its_last_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    record(path, ticks=3)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(UserError, match=r"cut.jsonl line 4: truncated"):
        load_recording(path)


def test_corrupt_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    record(path, ticks=3)
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = "{not json\n"
    path.write_text("".join(lines))
    with pytest.raises(UserError, match=r"bad.jsonl line 3: not valid JSON"):
        load_recording(path)


def test_wrong_field_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "field.jsonl"
    record(path, ticks=2)
    lines = path.read_text().splitlines()
    snap = json.loads(lines[2])
    snap["sockets"][1]["pid"] = "nginx"
    lines[2] = json.dumps(snap)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"line 3: sockets\[1\]\.pid: expected int"):
        load_recording(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ('{"format": "netlat-tui/record", "version": 1, "interval_s": 1}\n', "holds no snapshots"),
        ('{"hello": 1}\n', "line 1: not a netlat-tui recording"),
    ],
)
def test_not_a_recording(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_recording(path)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read recording"):
        load_recording(tmp_path / "nope.jsonl")


def test_cli_reports_a_corrupt_recording_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    record(path, ticks=2)
    path.write_bytes(path.read_bytes()[:-10])
    out = subprocess.run(
        [sys.executable, "-m", "tui", "--replay", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
    )
    assert out.returncode == 2
    expected = f"netlat-tui: {path} line 3: truncated line (recording cut short?)"
    assert out.stderr.strip().splitlines() == [expected]
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("module", ["tui.model.serialize", "tui.sources.replay", "tui.sources.factory"])
def test_recording_modules_import_neither_bcc_nor_textual(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('bcc', 'textual'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "", f"{module} pulls in {out.stdout.strip()}"


def test_factory_builds_replay_with_speed_and_wraps_recording(tmp_path: Path) -> None:
    from tui.cli import build_parser, filters_from_args
    from tui.sources.factory import make_source

    recorded = tmp_path / "in.jsonl"
    record(recorded, ticks=3)
    out = tmp_path / "out.jsonl"
    args = build_parser().parse_args(["--replay", str(recorded), "--speed", "2", "--record", str(out)])
    args.filters = filters_from_args(args)
    source = make_source(args)
    assert isinstance(source, RecordingSource) and isinstance(source.inner, ReplaySource)
    assert not source.live
    source.start()
    source.poll()
    assert source.interval_s == pytest.approx(0.25)  # 0.5 s recorded, played at 2x
    source.close()
    assert len(load_recording(out)[1]) == 1

    args = build_parser().parse_args(["--synthetic"])
    args.filters = filters_from_args(args)
    synthetic = make_source(args)
    assert isinstance(synthetic, SyntheticSource) and not synthetic.live

    args = build_parser().parse_args(["--synthetic", "--pid", "4242"])
    args.filters = filters_from_args(args)
    narrowed = make_source(args).poll()
    assert narrowed.sockets and {s.pid for s in narrowed.sockets} == {4242}
    assert narrowed.meta.filters == "pid=4242 (sockets+events only)"


def test_recording_keeps_the_newest_sampled_events_up_to_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "busy.jsonl"
    inner = SyntheticSource(seed=9, events_per_tick=40)  # 40 sampled events a tick
    recorder = RecordingSource(inner, path, max_events=15)
    recorder.start()
    live = recorder.poll()
    recorder.close()
    assert len(live.events) == 40  # the dashboard still gets every event
    replayed = load_recording(path)[1][0]
    assert replayed.events == live.events[-15:]
    assert replayed.paths == live.paths and replayed.sockets == live.sockets
