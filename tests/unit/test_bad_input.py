"""Bad input, case by case: exit code 2, one line naming the field, the value and what is allowed,
and nothing already written lost (an earlier run directory stays byte for byte as it was)."""

import hashlib

import numpy as np
import pytest
import yaml

from edgeweave.cli import main
from edgeweave.platform.config.schema import build_config, dump_config
from edgeweave.platform.run.checkpoint import RunState, fingerprint, save_checkpoint
from tests.helpers import tiny_raw

FD = "strategy={name: fd, rates: {strong: 1.5, medium: 0.5, weak: 0.25}}"
CASES = [  # (id, extra arguments after the config, text the one line must hold)
    ("unknown key", ["--set", "training.lrr=0.1"], "training.lrr: unknown key; valid keys: rounds"),
    ("wrong type", ["--set", "training.rounds=many"], "training.rounds = 'many'"),
    ("rate outside [0, 1]", ["--set", FD], "strategy.rates"),
    ("alpha <= 0", ["--set", "partition={policy: dirichlet, alpha: 0}"], "partition.alpha = 0"),
    ("more per round than devices", ["--set", "devices.per_round=50"], "devices.per_round = 50: must be at most"),
    (
        "deadline nobody meets",
        ["--set", "devices.deadline=0.000001", "--set", "devices.stragglers=drop"],
        "devices.deadline = 1e-06: no device can meet it",
    ),
    ("unknown dataset", ["--set", "data={name: mnist}"], "data.name = 'mnist': unknown dataset; valid: "),
    ("unknown model", ["--set", "model={name: resnet}"], "model.name = 'resnet': unknown model; valid: alexnet"),
    ("unknown strategy", ["--set", "strategy={name: fedx}"], "central, distreal, fd, fedavg"),  # plugins' too
    ("unknown policy", ["--set", "partition={policy: zipf}"], "partition.policy = 'zipf'"),
    ("missing data, download off", ["--set", "data={name: cifar10, root: /nonexistent, download: false}"], "data.root"),
    ("unwritable output", ["--set", "logging.out_dir=/proc/edgeweave"], "logging.out_dir = '/proc/edgeweave'"),
    ("malformed trace", ["--set", "devices.resources={name: trace, path: TRACE}"], "devices.resources.path"),
    ("unknown aggregation mode", ["--set", "aggregation={mode: buffered}"], "aggregation.mode = 'buffered'"),
    ("async buffer of 0", ["--set", "aggregation={mode: async, buffer: 0}"], "aggregation.buffer = 0"),
    (
        "async setting in a sync run",
        ["--set", "aggregation={buffer: 5}"],
        "aggregation.buffer = 5: only async aggregation uses it",
    ),
    (
        "async central",
        ["--set", "aggregation={mode: async}", "--set", "strategy={name: central}"],
        "aggregation.mode = 'async': strategy central trains the pooled data",
    ),
    (
        "async scaffold",
        ["--set", "aggregation={mode: async}", "--set", "strategy={name: scaffold}"],
        "strategy.name = 'scaffold': needs aggregation.mode: sync",
    ),
    (
        "unknown server rule",
        ["--set", "aggregation.server={name: fedadam}"],
        "aggregation.server.name = 'fedadam': unknown server rule; valid: adagrad, adam, momentum, plain, yogi",
    ),
    ("negative proximal term", ["--set", "training.prox_mu=-0.1"], "training.prox_mu = -0.1"),
    (
        "central with a server rule",
        ["--set", "strategy={name: central}", "--set", "aggregation.server={name: adam}"],
        "aggregation.server = {name: adam, lr: 0.01}: strategy central is the plainly trained reference",
    ),
    (
        "central with FedProx",
        ["--set", "strategy={name: central}", "--set", "training.prox_mu=0.1"],
        "training.prox_mu = 0.1: strategy central has no global model to stay near",
    ),
    (
        "a section as a bare name",
        ["--set", "aggregation.server=adam"],
        "aggregation.server = 'adam': must be a mapping, e.g. {name: adam}",
    ),
]


def snapshot(root):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def setup(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny_raw(tmp_path)))
    earlier = tmp_path / "runs" / "earlier-run"
    earlier.mkdir(parents=True)
    (earlier / "metrics.jsonl").write_text('{"round": 0}\n')
    (tmp_path / "trace.csv").write_text("device,time,available\n0,zero,1\n")
    return path, tmp_path


@pytest.mark.parametrize("case, extra, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_run_input(setup, capsys, case, extra, expected):
    path, root = setup
    before = snapshot(root)
    extra = [a.replace("TRACE", str(root / "trace.csv")) for a in extra]
    assert main(["run", str(path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert snapshot(root) == before  # nothing written, nothing lost


def checkpointed_run(root, cfg_raw):
    cfg = build_config(cfg_raw)
    run = root / "runs" / "interrupted"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(cfg))
    return cfg, run


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("corrupt", "unreadable"),
        ("foreign", "written by a run with another config"),
        ("missing", "no state.safetensors"),
    ],
)
def test_bad_checkpoints_are_refused(tmp_path, capsys, damage, expected):
    cfg, run = checkpointed_run(tmp_path, tiny_raw(tmp_path))
    stamp = fingerprint(dump_config(cfg)) if damage != "foreign" else "another"
    if damage != "missing":
        save_checkpoint(run / "checkpoint", RunState(1, np.zeros(4, np.float32), 0.0, 0.0), stamp)
    if damage == "corrupt":
        (run / "checkpoint" / "state.safetensors").write_bytes(b"\x00" * 40)
    before = snapshot(tmp_path)
    assert main(["run", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint = " in err and expected in err, err
    assert snapshot(tmp_path) == before


def test_sweep_over_a_key_that_does_not_exist(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_raw(tmp_path)))
    (tmp_path / "s.yaml").write_text(
        yaml.safe_dump({"base": str(tmp_path / "base.yaml"), "space": {"devices.speedd": {"grid": [1, 2]}}})
    )
    assert main(["sweep", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sweep space devices.speedd = 1: devices.speedd: unknown key" in err


@pytest.mark.parametrize(
    "args,line",
    [
        (["--rounds", "1"], "--rounds = 1: must be at least 2"),
        (["--repeat", "0"], "--repeat = 0: must be at least 1"),
        (["--samples", "0"], "--samples = 0: must be at least 1"),
        (["--workers", "two"], "--workers"),
        (["--whole", "--workloads", "cifar"], "--workloads = 'cifar': choose from cifar-plugin, quickstart"),
    ],
)
def test_bad_bench_options_get_one_line_and_exit_2_before_anything_runs(tmp_path, capsys, args, line):
    assert main(["bench", *args, "--out", str(tmp_path / "bench")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and line in err[0] and not (tmp_path / "bench").exists()
