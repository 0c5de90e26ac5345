"""What ties a checkpoint to its run: the config's sections, not where the run goes (its cluster, its
workers, its output folder, its progress bar), read from the parsed config rather than from its lines."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from edgeweave.platform.config.schema import dump_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.run.checkpoint import RunState, fingerprint, load_checkpoint, run_fingerprint, save_checkpoint


def test_a_resume_may_move_to_another_cluster_and_worker_count(make_config, tmp_path):
    first = make_config()
    moved = make_config(
        ray={"address": "ray://head:10001", "num_workers": 3, "cpus_per_worker": 2.0, "round_timeout": 60.0}
    )
    save_checkpoint(tmp_path / "ck", RunState(1, np.zeros(3, np.float32), 0.0, 0.0), run_fingerprint(first))
    assert load_checkpoint(tmp_path / "ck", run_fingerprint(moved)).next_round == 1


def test_only_the_logging_keys_out_dir_and_progress_are_left_out(make_config):
    a = make_config(logging={"out_dir": "/a", "progress": False})
    b = make_config(logging={"out_dir": "/b", "progress": True})
    c = make_config(logging={"checkpoint_every": 3})
    assert fingerprint(dump_config(a)) == fingerprint(dump_config(b)) != fingerprint(dump_config(c))


@pytest.mark.parametrize("key", ["out_dir", "progress", "ray"])
def test_keys_of_those_names_elsewhere_count(key):
    """A method's own `progress` (a plugin's parameter, say) changes what the run does: it is covered."""
    one = f"name: x\nstrategy:\n  name: mine\n  {key}: 1\n"
    other = f"name: x\nstrategy:\n  name: mine\n  {key}: 2\n"
    assert fingerprint(one) != fingerprint(other)


def test_a_checkpoint_of_an_earlier_format_is_refused_in_one_line(tmp_path):
    """Format 2 fingerprinted `ray.*` and the YAML's lines: its fingerprints cannot be checked any more."""
    (tmp_path / "ck").mkdir()
    save_file(
        {"weights": np.zeros(3, np.float32)},
        str(tmp_path / "ck" / "state.safetensors"),
        metadata={"edgeweave": json.dumps({"format": "edgeweave-checkpoint/2", "config": "abc"})},
    )
    with pytest.raises(
        UserError,
        match=r"^checkpoint = '.*ck': written by another edgeweave version "
        r"\(format edgeweave-checkpoint/2; this one reads edgeweave-checkpoint/3\); "
        r"resume it with the version that wrote it, or start a new run$",
    ):
        load_checkpoint(tmp_path / "ck", "abc")


def test_an_input_file_counts_by_its_content_not_where_it_lies(tmp_path):
    """Configs record input files as absolute paths; a checkout moved elsewhere resumes its runs, while a
    trace whose content changed is refused."""
    import shutil

    from edgeweave.platform.config.schema import load_config

    shutil.copytree("configs", tmp_path / "a")
    shutil.copytree("configs", tmp_path / "b")
    here, moved = (load_config(tmp_path / f / "devices_trace.yaml") for f in "ab")
    assert here.devices.resources.path != moved.devices.resources.path
    assert run_fingerprint(here) == run_fingerprint(moved)
    (tmp_path / "b" / "traces" / "example.csv").write_text("device,time,available,speed\n0,0,1,0.5\n")
    assert run_fingerprint(here) != run_fingerprint(load_config(tmp_path / "b" / "devices_trace.yaml"))
