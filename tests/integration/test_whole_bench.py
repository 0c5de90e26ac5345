"""`edgeweave bench --whole`: the whole command of `edgeweave run` and of the floor, each a new process."""

import json

import pytest

from edgeweave.cli import main

pytestmark = pytest.mark.integration


def test_whole_bench_times_both_commands_and_their_phases(tmp_path, capsys):
    out = tmp_path / "whole"
    assert main(["bench", "--whole", "--workloads", "quickstart", "--repeat", "1", "--out", str(out)]) == 0
    rows = json.loads((out / "whole.json").read_text())
    assert [(r["workload"], r["kind"]) for r in rows] == [("quickstart", "floor"), ("quickstart", "platform")]
    for r in rows:
        assert r["rc"] == 0 and r["wall_s"] > r["first_round_done_s"] > 0
        assert r["tree_peak_mb"] > 50 and r["own_peak_mb"] > 50  # memory was sampled, not left at 0
        assert {"config and plugins", "data load", "workers ready", "first round", "rounds", "shutdown"} <= set(
            r["phases"]
        )
    floor, platform = rows
    assert "ray start" in platform["phases"] and "ray start" not in floor["phases"]
    # The floor trains the devices the platform trains, on the same mini-batches: the same model, so the same
    # accuracy up to float rounding.
    accuracy = json.loads(next((out / "quickstart" / "0" / "floor").rglob("result.json")).read_text())["accuracy"]
    (metrics,) = (out / "quickstart" / "0" / "platform").rglob("metrics.jsonl")
    final = json.loads(metrics.read_text().splitlines()[-1])["test_accuracy"]
    assert abs(accuracy - final) < 0.01
    md = (out / "whole.md").read_text()
    assert "quickstart: whole command / floor's" in md and "| first round |" in md
    assert (out / "whole.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the phases drawn
    assert "bench ->" in capsys.readouterr().out
