"""`bench --whole`'s arithmetic on drawn timings, and its view of a process tree."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeweave.platform.bench.whole import descendants, targets, timed

seconds = st.floats(0.05, 900.0, allow_nan=False)


def row(kind: str, wall: float, first: float, tree: float, own: float, idle: float) -> dict:
    return {
        "workload": "w",
        "kind": kind,
        "repeat": 0,
        "wall_s": wall,
        "rc": 0,
        "first_round_done_s": first,
        "tree_peak_mb": tree,
        "own_peak_mb": own,
        "phases": {"rounds": wall / 2},
        "repeated": {},
        "idle": [{"start": 0.0, "end": idle, "seconds": idle}] if idle else [],
    }


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(seconds, seconds, st.floats(1.0, 9e4), st.floats(1.0, 9e4), st.sampled_from([0.0, 0.3, 1.7])),
        min_size=2,
        max_size=10,
    )
)
def test_targets_judge_the_medians_of_alternating_repeats(drawn):
    kinds = ["floor", "platform"] * (len(drawn) // 2)
    rows = [row(k, *d) for k, d in zip(kinds, drawn)]
    (line,) = targets(rows)
    med = {
        k: {
            f: statistics.median(r[f] for r in rows if r["kind"] == k)
            for f in ("wall_s", "first_round_done_s", "tree_peak_mb", "own_peak_mb")
        }
        for k in ("floor", "platform")
    }
    ratio = med["platform"]["wall_s"] / med["floor"]["wall_s"]
    assert f"whole command / floor's {ratio:.2f}x ({'met' if ratio <= 1.15 else 'missed'}" in line
    later = med["platform"]["first_round_done_s"] - med["floor"]["first_round_done_s"]
    assert f"first round done after the floor's {later:.2f} s ({'met' if later <= 3 else 'missed'}" in line
    idle = max([r["idle"][0]["seconds"] for r in rows if r["kind"] == "platform" and r["idle"]] or [0.0])
    assert f"longest time in no phase {idle:.2f} s ({'met' if idle <= 1 else 'missed'}" in line
    tree = med["platform"]["tree_peak_mb"] / med["floor"]["tree_peak_mb"]
    assert f"peak memory / floor's {tree:.2f}x ({'met' if tree <= 1.1 else 'missed'}" in line


def test_a_command_is_timed_with_the_memory_of_its_whole_tree(tmp_path):
    assert os.getpid() in descendants(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert child.pid in descendants(os.getpid())
    finally:
        child.kill()
        child.wait()
    # a command whose child holds 200 MB: the tree's peak sees it, the command's own peak does not
    script = (
        "import subprocess, sys; subprocess.run([sys.executable, '-c', "
        "'import time; b = bytearray(200 * 2**20); b[::4096] = b\\\"x\\\" * len(b[::4096]); time.sleep(1.5)'])"
    )
    result = timed([sys.executable, "-c", script], tmp_path / "log")
    assert result["rc"] == 0 and result["wall_s"] >= 1.5
    assert result["tree_peak_mb"] >= 200 > result["own_peak_mb"]
