"""Files a config names (a trace, a front) are found from the config's folder, as its plugins are, and
recorded as absolute paths: a run resumes, and a sweep's trials run, from any working directory."""

from pathlib import Path

import pytest
import yaml

from edgeweave.platform.config.schema import build_config, load_config
from edgeweave.platform.config.sweep import load_sweep, trial_raw
from edgeweave.platform.core.inputs import input_files
from edgeweave.platform.run.checkpoint import run_fingerprint
from edgeweave.platform.run.rundir import create_run_dir
from tests.helpers import tiny_raw

TRACE = "device,time,available,speed\n0,0,1,1.0\n0,5,1,0.5\n"
ON_TRACE = {"count": 6, "per_round": 4, "resources": {"name": "trace", "path": "traces/t.csv"}}


def project(root: Path, config_in: str = ".", **sections) -> Path:
    """A folder with a trace in traces/ and a config (in `config_in`) naming it as traces/t.csv."""
    (root / "traces").mkdir(parents=True)
    (root / "traces" / "t.csv").write_text(TRACE)
    (root / "elsewhere").mkdir()
    path = root / config_in / "exp.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(tiny_raw(root, devices=ON_TRACE, **sections)))
    return path


def test_a_trace_is_found_from_the_configs_folder(tmp_path, monkeypatch):
    path = project(tmp_path)
    monkeypatch.chdir(tmp_path / "elsewhere")
    cfg = load_config(path)
    assert cfg.devices.resources.path == str(tmp_path / "traces" / "t.csv")
    assert input_files(cfg) == {"devices.resources.path": TRACE.encode()}


def test_a_run_resumes_from_another_folder_with_the_same_fingerprint(tmp_path, monkeypatch):
    path = project(tmp_path)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path.name)
    run_dir = create_run_dir(cfg)
    monkeypatch.chdir(tmp_path / "elsewhere")
    again = load_config(run_dir / "config.yaml")
    assert input_files(again) == {"devices.resources.path": TRACE.encode()}
    assert run_fingerprint(again) == run_fingerprint(cfg)


def test_a_path_from_the_working_directory_still_works(tmp_path, monkeypatch):
    """Configs written when paths were relative to the working directory go on working from there."""
    path = project(tmp_path, config_in="sub")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path)
    assert cfg.devices.resources.path == str(tmp_path / "traces" / "t.csv")


def test_a_front_still_to_be_made_is_placed_beside_the_config(tmp_path, monkeypatch):
    """`edgeweave dse CONFIG` writes strategy.front where the config's runs will read it."""
    path = project(tmp_path, strategy={"name": "distreal", "front": "fronts/f.json"})
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert load_config(path, check_strategy=False).strategy.front == str(tmp_path / "fronts" / "f.json")


def test_a_sweeps_trials_read_the_files_of_its_base_from_the_bases_folder(tmp_path, monkeypatch):
    path = project(tmp_path)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": str(path), "space": {"training.lr": {"grid": [0.1, 0.2, 0.3, 0.4]}}}))
    monkeypatch.chdir(tmp_path / "elsewhere")
    checked, base = load_sweep(sweep)
    trial = build_config(trial_raw(base, checked.set, {"training.lr": 0.2}))
    assert input_files(trial) == {"devices.resources.path": TRACE.encode()}


@pytest.mark.parametrize(
    "path, field",
    [
        ("configs/devices_trace.yaml", "devices.resources.path"),
        ("configs/distreal_digits.yaml", "strategy.front"),
        ("configs/distreal_femnist.yaml", "strategy.front"),
        ("configs/distreal_paper.yaml", "strategy.front"),
    ],
)
def test_shipped_configs_find_their_files_from_any_folder(tmp_path, monkeypatch, path, field):
    shipped = Path(path).absolute()
    monkeypatch.chdir(tmp_path)
    assert field in input_files(load_config(shipped))
