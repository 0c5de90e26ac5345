"""Run state kept by the driver, not the server, survives a resume: the count of device workers lost."""

import numpy as np

from edgeweave.actors.driver import Driver
from edgeweave.actors.pool import Spawn
from edgeweave.platform.data import load_dataset
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.checkpoint import RunState, load_checkpoint, save_checkpoint


def test_workers_lost_go_on_counting_after_a_resume(make_config, tmp_path):
    """The driver and its pool are plain classes: no worker is started, none is asked anything."""
    cfg = make_config()
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    spawn = Spawn(cls=None, args=(), cpus=1.0, gpus=0.0)
    before = Driver(cfg)
    before.open(cfg, data, part, spawn, limit=2, starting=[{}])
    before.pool.lost = 3
    save_checkpoint(tmp_path / "ck", before.snapshot(1, []), "f")
    after = Driver(cfg)
    after.open(cfg, data, part, spawn, limit=2, starting=[{}])
    after.restore(load_checkpoint(tmp_path / "ck", "f"))
    assert after.pool.lost == 3


def test_a_checkpoint_keeps_the_workers_lost(tmp_path):
    save_checkpoint(tmp_path / "ck", RunState(1, np.zeros(3, np.float32), 0.0, 0.0, workers_lost=4), "f")
    assert load_checkpoint(tmp_path / "ck", "f").workers_lost == 4
