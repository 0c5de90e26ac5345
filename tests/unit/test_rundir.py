import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from edgeweave.platform.config.schema import load_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.models import build_model
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.run import rundir
from edgeweave.platform.run.rundir import create_run_dir, save_weights


def test_run_dirs_are_fresh_and_hold_the_resolved_config(make_config):
    cfg = make_config()
    a, b = create_run_dir(cfg), create_run_dir(cfg)
    assert a != b and a.parent == b.parent
    assert a.name.startswith("tiny-")
    assert load_config(a / "config.yaml") == cfg


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out_dir_is_a_user_error(make_config, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(UserError, match="logging.out_dir"):
        create_run_dir(make_config(logging={"out_dir": str(locked / "runs")}))


def test_out_dir_through_a_file_is_a_user_error(make_config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match=r"logging.out_dir = '.*file/runs': cannot write there"):
        create_run_dir(make_config(logging={"out_dir": str(blocker / "runs")}))


def test_saved_weights_load_strictly_into_a_fresh_model(make_config, tmp_path):
    cfg = make_config(model={"name": "vgg11", "width": 0.0625})
    model = build_model(cfg.model, (1, 8, 8), 10, seed=0)
    flat = np.random.default_rng(0).standard_normal(FlatLayout(model).size).astype(np.float32)
    save_weights(tmp_path / "m.safetensors", model, flat)
    fresh = build_model(cfg.model, (1, 8, 8), 10, seed=1)
    fresh.load_state_dict(load_file(tmp_path / "m.safetensors"))  # strict
    np.testing.assert_array_equal(FlatLayout(fresh).flatten(fresh), flat)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in fresh.modules())


def test_weights_are_replaced_whole_or_not_at_all(make_config, tmp_path, monkeypatch):
    model = build_model(make_config().model, (1, 8, 8), 10, seed=0)
    size = FlatLayout(model).size
    path = tmp_path / "model.safetensors"
    save_weights(path, model, np.zeros(size, np.float32))
    before = path.read_bytes()

    def torn(tensors, filename, *args, **kwargs):  # the disk fills up halfway through the file
        with open(filename, "wb") as f:
            f.write(before[: len(before) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rundir, "save_file", torn)
    with pytest.raises(OSError, match="No space"):
        save_weights(path, model, np.ones(size, np.float32))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temporary left behind
