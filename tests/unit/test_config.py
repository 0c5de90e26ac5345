import pytest
import yaml

from edgeweave.platform.config.schema import apply_overrides, build_config, dump_config, load_config
from edgeweave.platform.core.errors import UserError
from tests.helpers import tiny_raw


def test_quickstart_config_loads():
    cfg = load_config("configs/quickstart.yaml")
    assert cfg.data.name == "digits"
    assert cfg.strategy.name == "fedavg"
    assert cfg.partition.alpha == 0.5
    assert cfg.devices.per_round <= cfg.devices.count


def test_resolved_config_round_trips(tmp_path):
    cfg = build_config(tiny_raw(tmp_path, partition={"policy": "dirichlet", "alpha": 0.3}))
    again = build_config(yaml.safe_load(dump_config(cfg)))
    assert again == cfg
    assert again.partition.alpha == 0.3
    assert again.partition.min_samples == 1  # the default is written out


def test_fields_added_later_are_dumped_only_off_their_default(tmp_path):
    # A run directory written before these fields existed resumes: its config dumps, and so
    # fingerprints, as it did then; a value a user chose is written out.
    cfg = build_config(tiny_raw(tmp_path))
    ray_section = yaml.safe_load(dump_config(cfg))["ray"]
    assert "start_timeout" not in ray_section and "round_timeout" not in ray_section
    assert "plugins" not in yaml.safe_load(dump_config(cfg))
    chosen = build_config(tiny_raw(tmp_path, ray={"round_timeout": 60}))
    assert yaml.safe_load(dump_config(chosen))["ray"]["round_timeout"] == 60
    assert build_config(yaml.safe_load(dump_config(chosen))) == chosen


def test_an_unknown_strategy_lists_every_registered_one(tmp_path):
    from edgeweave.platform.methods import STRATEGIES

    with pytest.raises(UserError) as err:
        build_config(apply_overrides(tiny_raw(tmp_path), ["strategy.name=fedx"]))
    listed = str(err.value).split("valid: ", 1)[1].split(", ")
    assert listed == STRATEGIES.names()  # a plugin's methods among them, when one is loaded
    assert set(STRATEGIES.built_in()) <= set(listed) and "scaffold" in listed


@pytest.mark.parametrize(
    "override, expected",
    [
        ("training.lrr=1", "training.lrr: unknown key; valid keys: rounds,"),
        ("training.lr=-1", "training.lr = -1: Input should be greater than 0"),
        ("training.rounds=many", "training.rounds = 'many': Input should be a valid integer"),
        ("strategy.name=fedx", "strategy.name = 'fedx': unknown strategy; valid: "),  # every name: below
        (
            "partition.policy=random",
            "partition.policy = 'random': unknown partition policy; valid: classes, dirichlet, iid, natural, pool, shards",
        ),
        (
            "data.name=mnist",
            "data.name = 'mnist': unknown dataset; valid: cifar10, cifar100, digits, femnist, shapes, speech_commands, synthetic",
        ),
        ("model.name=resnet", "model.name = 'resnet': unknown model; valid: alexnet, cnn, kws_cnn, vgg11, vgg16"),
        ("devices.per_round=7", "devices.per_round = 7: must be at most devices.count (6)"),
        ("logging.wandb.mode=cloud", "logging.wandb.mode = 'cloud': Input should be 'offline', 'online' or 'disabled'"),
        ("extra.key=1", "extra: unknown key; valid keys: plugins, name, seed, data,"),
        ("data.test_fraction=1.5", "data.test_fraction = 1.5: Input should be less than 1"),
    ],
)
def test_bad_values_name_field_value_and_what_is_allowed(tmp_path, override, expected):
    raw = apply_overrides(tiny_raw(tmp_path), [override])
    with pytest.raises(UserError) as err:
        build_config(raw)
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_params_of_another_policy_are_rejected(tmp_path):
    raw = tiny_raw(tmp_path, partition={"policy": "iid", "alpha": 0.1})
    with pytest.raises(UserError, match=r"partition.alpha: unknown key; valid keys: none"):
        build_config(raw)


def test_overrides_are_typed_by_yaml(tmp_path):
    raw = apply_overrides(
        tiny_raw(tmp_path),
        ["training.lr=0.2", "training.local_steps=null", "partition.policy=classes", "partition.classes=[[0,1],[2]]"],
    )
    cfg = build_config(raw)
    assert cfg.training.lr == 0.2 and cfg.training.local_steps is None
    assert cfg.partition.classes == [[0, 1], [2]]


@pytest.mark.parametrize("text", ["training", "=3", "training..lr=1", "training.lr=[1"])
def test_malformed_overrides(tmp_path, text):
    with pytest.raises(UserError, match="--set"):
        apply_overrides(tiny_raw(tmp_path), [text])


def test_override_through_a_value_is_rejected(tmp_path):
    with pytest.raises(UserError, match="training.lr is not a section"):
        apply_overrides(tiny_raw(tmp_path), ["training.lr.x=1"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [1,\n")
    with pytest.raises(UserError, match="not valid YAML at line"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(UserError, match="must be a mapping"):
        load_config(listy)


@pytest.mark.parametrize(
    "path, method",
    [
        ("configs/quickstart.yaml", "fedavg"),
        ("configs/distreal_paper.yaml", "distreal"),
        ("configs/taskwise_synthetic.yaml", "taskwise"),
    ],
)
def test_validating_a_config_imports_neither_torch_nor_another_method(path, method):
    """A config is checked (the tune driver, `ray job submit`, a typo's exit 2) without loading torch,
    and looking its method up imports that method's file alone."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        f"import sys; from edgeweave.platform.config.schema import load_config; load_config({path!r}); "
        "print('torch' in sys.modules, sorted(m.rsplit('.', 1)[1] for m in sys.modules "
        "if m.startswith('edgeweave.platform.methods.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    ).stdout.split(" ", 1)
    assert out[0] == "False"
    assert set(yaml.safe_load(out[1])) - {"base", "context", "server_rules", "front"} == {method}
