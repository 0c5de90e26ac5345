"""A command's phase timeline: spans on one clock from the process's start, repeats summed, gaps found."""

from __future__ import annotations

import json
import time

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edgeweave.platform.run.phases import Phases, process_age

spans = st.lists(st.tuples(st.floats(0.0, 500.0), st.floats(0.001, 90.0)), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(spans)
def test_idle_gaps_are_exactly_the_stretches_of_more_than_a_second_no_phase_covers(drawn):
    phases = Phases()
    for start, length in drawn:
        phases.add("p", start, start + length)
    gaps = phases.idle()
    covered = sorted((s, s + n) for s, n in drawn)
    for gap in gaps:
        assert gap["seconds"] > 1.0
        assert not any(s < gap["end"] - 2e-3 and e > gap["start"] + 2e-3 for s, e in covered)  # nothing in a gap
    # every uncovered stretch of more than a second (from 0 to the last phase's end) is a gap
    reached, expected = 0.0, []
    for s, e in covered:
        assume(abs(s - reached - 1.0) > 0.01)  # spans are kept to the millisecond: a gap that close to 1 s is either
        if s - reached > 1.0:
            expected.append(s - reached)
        reached = max(reached, e)
    assert len(gaps) == len(expected)
    assert all(abs(g["seconds"] - x) < 2e-3 for g, x in zip(gaps, expected))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 30.0), min_size=1, max_size=20))
def test_repeated_phases_are_counted_and_summed(seconds):
    phases = Phases()
    for s in seconds:
        phases.repeat("evaluations", s)
    entry = phases.as_dict()["repeated"]["evaluations"]
    assert entry["count"] == len(seconds)
    assert abs(entry["seconds"] - sum(seconds)) < 1e-3 + 1e-9 * sum(seconds)


def test_a_phase_is_timed_on_the_clock_from_the_process_s_start(tmp_path):
    assert 0.0 < process_age() < 24 * 3600  # this process started a while ago, not before the machine
    phases = Phases(from_process_start=True)
    assert phases.now() >= process_age() - 0.05
    with phases.phase("sleep", waits="nothing"):
        time.sleep(0.13)
    written = phases.save(tmp_path)
    span = written["phases"][0]
    assert span["phase"] == "sleep" and span["waits_for"] == "nothing" and span["waited"] is False
    assert 0.12 <= span["seconds"] < 1.0 and span["start"] > 0
    assert json.loads((tmp_path / "timeline.json").read_text()) == written
    assert "sleep 0.1" in phases.line()


def test_a_phase_that_waits_says_so_on_the_console_after_the_notice(monkeypatch, capsys):
    from edgeweave.platform.run import phases as module

    monkeypatch.setattr(module, "NOTICE", 0.05)
    phases = Phases()
    with phases.phase("workers ready", waits="device workers (1 CPU each) to start"):
        time.sleep(0.3)
    with phases.phase("quick", waits="something"):
        pass
    time.sleep(0.1)
    err = capsys.readouterr().err
    assert "workers ready: waiting for device workers (1 CPU each) to start" in err
    assert "quick" not in err
    assert [s.get("waited") for s in phases.spans] == [True, False]
