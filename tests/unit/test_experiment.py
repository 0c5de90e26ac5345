"""The run loop's own duties, with a runner made by hand: a failed run closes what it opened."""

import numpy as np
import pytest

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.errors import RunFailed
from edgeweave.platform.run.experiment import run_rounds
from edgeweave.platform.run.sinks import Sinks
from tests.helpers import tiny_raw


class Recorder:
    def __init__(self):
        self.logged, self.closed = [], []

    def log(self, metrics):
        self.logged.append(metrics["round"])

    def image(self, path):
        pass

    def close(self, summary):
        self.closed.append(summary)


class Diverges:
    """Two good rounds, then the weights become NaN."""

    def round(self, r):
        metrics = {"round": r, "device_records": [], "test_accuracy": 0.5, "test_loss": 1.0}
        if r == 2:
            metrics["non_finite"] = "the global weights"
        return metrics

    def weights(self):
        return np.zeros(3, np.float32)

    def snapshot(self, next_round, history):
        raise AssertionError("no checkpoint is asked for in this test")


def test_a_diverging_run_closes_its_sinks_marked_failed(tmp_path):
    cfg = build_config(tiny_raw(tmp_path, training={"rounds": 5}, logging={"checkpoint_every": 0}))
    sink = Recorder()
    with pytest.raises(RunFailed, match="round 2: the global weights became NaN"):
        run_rounds(cfg, Diverges(), Sinks([sink]), tmp_path)
    assert sink.logged == [0, 1]
    assert len(sink.closed) == 1 and "became NaN" in sink.closed[0]["failed"]


@pytest.mark.parametrize(
    "server, named",
    [
        (None, "lower training.lr (now 0.05) or check the data"),
        ({"name": "plain", "lr": 1000.0}, "lower training.lr (now 0.05) or aggregation.server.lr (now 1000)"),
    ],
)
def test_a_diverging_run_names_the_rates_it_ran_with(tmp_path, server, named):
    raw = tiny_raw(tmp_path, training={"rounds": 5}, logging={"checkpoint_every": 0})
    if server:
        raw["aggregation"] = {"server": server}
    with pytest.raises(RunFailed, match=named.replace("(", r"\(").replace(")", r"\)")):
        run_rounds(build_config(raw), Diverges(), Sinks([Recorder()]), tmp_path)
