"""Plugins: users' parts registered like built-in ones, carried with the config to every process."""

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeweave.cli import main
from edgeweave.platform.config.schema import build_config, dump_config, load_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.data import load_dataset
from edgeweave.platform.devices.view import DeviceView
from edgeweave.platform.models import build_model
from edgeweave.platform.run.checkpoint import run_fingerprint
from tests.helpers import tiny_raw

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "custom_model"

PARTITION = '''
import numpy as np
from edgeweave.platform.partition.base import PARTITIONERS
from edgeweave.platform.core.registry import Params


class HalvesParams(Params):
    first: float = 0.5


@PARTITIONERS.register("{name}", HalvesParams)
class Halves:
    """Device 0 gets the first share of the samples, the rest share the others."""

    def __init__(self, params):
        self.params = params

    def split(self, labels, num_devices, g):
        cut = int(len(labels) * self.params.first)
        return [np.arange(cut)] + list(np.array_split(np.arange(cut, len(labels)), num_devices - 1))
'''


def write(tmp_path, name="halves", folder="plugs", **partition):
    (tmp_path / folder).mkdir(exist_ok=True)
    (tmp_path / folder / "halves.py").write_text(PARTITION.format(name=name))
    raw = tiny_raw(tmp_path, partition={"policy": name, **partition})
    raw["plugins"] = ["halves.py"]
    path = tmp_path / folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_example_registers_a_model_and_a_resource_model_the_config_uses(monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_config(EXAMPLE / "config.yaml", ["devices.count=8"])
    assert cfg.plugins == [str((EXAMPLE / "plugin.py").resolve())]
    data = load_dataset(cfg.data, cfg.seed)
    model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed)
    assert [m.out_channels for m in model.features if hasattr(m, "out_channels")] == [48]
    view = DeviceView(cfg)
    ids = np.arange(8)
    states = [view.resources.state(ids, 0, t) for t in np.arange(0.0, 90.0, 1.0)]
    assert any(not a.all() for a, _ in states) and {0.4, 1.0} <= {float(x) for _, s in states for x in s}
    change = view.resources.next_change(ids, 0, 5.0)
    assert (change > 5.0).all() and (change <= 5.0 + 90.0).all()


def test_a_plugin_path_is_relative_to_its_config_and_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(write(tmp_path, name="halves_a", first=0.25))
    assert cfg.plugins == [str((tmp_path / "plugs" / "halves.py").resolve())] and cfg.partition.first == 0.25
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(dump_config(cfg))  # what a run directory keeps
    monkeypatch.chdir(tmp_path / "run")  # a resume from anywhere finds the plugin
    again = load_config(tmp_path / "run" / "config.yaml")
    assert again.plugins == cfg.plugins and run_fingerprint(again) == run_fingerprint(cfg)


def test_a_plugin_flag_names_the_file_in_the_working_directory_not_the_configs(tmp_path, monkeypatch):
    path = write(tmp_path, name="halves_e", folder="cfgdir")  # cfgdir/halves.py registers halves_e
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "halves.py").write_text(PARTITION.format(name="halves_f"))
    raw = yaml.safe_load(path.read_text())
    raw["plugins"], raw["partition"] = [], {"policy": "halves_f"}
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path / "work")
    cfg = load_config(path, plugins=["halves.py"])
    assert cfg.plugins == [str((tmp_path / "work" / "halves.py").resolve())] and cfg.partition.name == "halves_f"
    both = load_config(path, ["plugins=[halves.py]"], plugins=["halves.py"])  # --set plugins keeps --plugin
    assert both.plugins == [str((tmp_path / "cfgdir" / "halves.py").resolve()), cfg.plugins[0]]


def test_a_config_without_plugins_dumps_and_fingerprints_as_before(make_config):
    cfg = make_config()
    assert "plugins:" not in dump_config(cfg) and "plugins[" not in run_fingerprint(cfg)


def test_a_plugin_that_fails_half_way_takes_back_what_it_registered(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, name="halves_g")
    source = tmp_path / "plugs" / "halves.py"
    good = source.read_text()
    source.write_text(good + "\nraise RuntimeError('not yet')\n")
    with pytest.raises(UserError, match=r"importing it failed \(RuntimeError: not yet\)$"):
        load_config(path)
    source.write_text(good)  # fixed: it registers the same name again, in the same process
    assert load_config(path).partition.name == "halves_g"


def test_a_sweep_trial_runs_the_plugin_the_sweep_read(tmp_path, monkeypatch):
    """A trial builds its config from the source that travelled with the sweep, not from the file now."""
    from edgeweave.platform.config.schema import build_config

    monkeypatch.chdir(tmp_path)
    cfg = load_config(write(tmp_path, name="halves_h", first=0.25))
    raw = cfg.to_dict()
    (tmp_path / "plugs" / "halves.py").unlink()
    with pytest.raises(UserError, match="no such file"):
        build_config(raw)
    assert build_config(raw, carried=cfg.loaded_plugins()).plugin_sources() == cfg.plugin_sources()


def test_a_changed_plugin_changes_the_fingerprint_so_a_resume_is_refused(tmp_path, monkeypatch):
    from edgeweave.platform.run.checkpoint import RunState, load_checkpoint, save_checkpoint

    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, name="halves_b")
    cfg = load_config(path)
    save_checkpoint(tmp_path / "ck", RunState(1, np.zeros(3, np.float32), 0.0, 0.0), run_fingerprint(cfg))
    source = tmp_path / "plugs" / "halves.py"
    source.write_text(source.read_text() + "\n# edited\n")
    with pytest.raises(UserError, match=r"plugins\[.*plugs/halves.py\]"):
        load_checkpoint(tmp_path / "ck", run_fingerprint(load_config(path)))


def test_a_name_that_clashes_with_a_built_in_names_both(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        UserError,
        match=r"^plugins = '.*plugs/halves.py': partition policy 'iid' "
        r"clashes with a built-in partition policy of the same name "
        r"\(edgeweave.platform.partition.iid\); give it another name$",
    ):
        load_config(write(tmp_path, name="iid"))


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("nowhere.py", r"^plugins = 'nowhere.py': no such file \(looked in .* and in the working directory\)$"),
        ("no_such_module_xyz", r"^plugins = 'no_such_module_xyz': no such module; name an importable module"),
        ("broken.py", r"^plugins = '/.*/broken.py': importing it failed \(ZeroDivisionError: division by zero\)$"),
    ],
)
def test_bad_plugins_are_one_line(tmp_path, monkeypatch, spec, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.py").write_text("x = 1 / 0\n")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**tiny_raw(tmp_path), "plugins": [spec]}))
    with pytest.raises(UserError, match=expected):
        load_config(tmp_path / "c.yaml")


def test_plugin_flag_adds_a_plugin_from_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, name="halves_c")
    raw = yaml.safe_load(path.read_text())
    del raw["plugins"]
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(raw))
    assert main(["run", "plain.yaml", "--set", "training.rounds=1"]) == 2
    assert "partition.policy = 'halves_c': unknown partition policy" in capsys.readouterr().err
    cfg = load_config(tmp_path / "plain.yaml", plugins=["plugs/halves.py"])
    assert cfg.plugins == [str((tmp_path / "plugs" / "halves.py").resolve())] and cfg.partition.name == "halves_c"


def test_an_unpickled_config_imports_its_plugins_first(tmp_path, monkeypatch):
    """What a Ray worker, a replacement or a Tune trial on another node does: it gets the config pickled,
    without the plugin file, and finds the plugin's classes."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(write(tmp_path, name="halves_d", first=0.75))
    blob = tmp_path / "cfg.pkl"
    blob.write_bytes(pickle.dumps(cfg))
    (tmp_path / "plugs" / "halves.py").unlink()  # the file is not there: the source travels in the config
    code = textwrap.dedent(f"""
        import pickle, sys
        cfg = pickle.loads(open({str(blob)!r}, "rb").read())
        from edgeweave.platform.partition import PARTITIONERS
        cls, params = PARTITIONERS.entry(cfg.partition.name, "partition.policy")
        print(type(cfg.partition.params).__name__, cfg.partition.first, cls.__name__)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["HalvesParams", "0.75", "Halves"]


@given(
    start=st.floats(0, 1e6),
    capacity=st.integers(1, 10**5).map(lambda n: n / 10),
    recharge=st.integers(1, 10**5).map(lambda n: n / 10),
    device=st.integers(0, 10**6),
)
@settings(max_examples=60, deadline=None)
def test_the_example_battery_changes_state_at_every_change_it_announces(start, capacity, recharge, device):
    """Full speed, power saving, offline, full speed again: each announced change is the next state,
    never the old one (state and next_change read the same absolute edges, as a plugin must)."""
    from edgeweave.platform.devices.resources import build_resources

    cfg = load_config(
        EXAMPLE / "config.yaml", [f"devices.resources.capacity={capacity}", f"devices.resources.recharge={recharge}"]
    )
    battery = build_resources(cfg.devices.resources, 3)
    ids = np.array([device])

    def phase(t):
        available, speed = battery.state(ids, 0, t)
        return 2 if not available[0] else int(speed[0] != 1.0)  # 0 full, 1 power saving, 2 offline

    t, now = start, phase(start)
    for _ in range(7):
        change = float(battery.next_change(ids, 0, t)[0])
        assert change > t
        assert phase(np.nextafter(change, -np.inf)) == now  # held until the change
        nxt = phase(change)
        assert nxt == (now + 1) % 3, (t, change, now, nxt)
        t, now = change, nxt


STATEFUL = ROOT / "examples" / "stateful_method"


@pytest.fixture
def carry():
    """The stateful example's method, taken back from the registry after the test (other tests list the names)."""
    from edgeweave.platform.core.registry import Registry
    from edgeweave.platform.methods import STRATEGIES

    yield
    owner = STRATEGIES._owners.get("carry")
    if owner is not None:  # forgotten, and unloaded, so the next test that names the plugin imports it afresh
        Registry.forget(owner)
        sys.modules.pop(owner, None)


def test_the_stateful_example_keeps_each_devices_momentum_in_the_store_and_resumes_exactly(
    tmp_path, monkeypatch, carry
):
    from edgeweave.platform.partition import partition_data
    from edgeweave.platform.run.checkpoint import load_checkpoint, run_fingerprint, save_checkpoint
    from edgeweave.platform.run.client import Client
    from edgeweave.platform.run.servers import build_server

    monkeypatch.chdir(ROOT)
    cfg = load_config(
        STATEFUL / "config.yaml",
        ["devices.count=6", "devices.per_round=6", "training.local_steps=2", "strategy.beta=0.5"],
    )
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)

    def go(server, first, last):
        client = Client(cfg, data, part)
        for r in range(first, last):
            jobs, _ = server.plan(r)
            kept = {j.device: server.states.get(j.device).get("momentum") for j in jobs}
            partial = client.run(r, server.weights, jobs, server.shared, server.stored(jobs))
            fedavg = Client(
                cfg.model_copy(
                    update={"strategy": load_config(STATEFUL / "config.yaml", ["strategy={name: fedavg}"]).strategy}
                ),
                data,
                part,
            )
            for job in jobs:  # what FedAvg's device would train from the same weights
                alone = fedavg.run(r, server.weights, [job])
                update = alone.sums / alone.counts - server.weights
                want = update if kept[job.device] is None else 0.5 * kept[job.device] + update
                np.testing.assert_allclose(partial.states[job.device]["momentum"], want, rtol=1e-5, atol=1e-6)
            server.update([partial])
        return server

    whole = go(build_server(cfg, data, part), 0, 3)
    assert whole.half.holders == 6 and whole.states.seen.all()
    stamp = run_fingerprint(cfg)
    save_checkpoint(tmp_path / "ck", go(build_server(cfg, data, part), 0, 2).snapshot(2, []), stamp)
    resumed = build_server(cfg, data, part)
    resumed.restore(load_checkpoint(tmp_path / "ck", stamp))
    go(resumed, 2, 3)
    np.testing.assert_array_equal(resumed.weights, whole.weights)
    assert resumed.half.holders == 6


def test_a_device_that_keeps_state_brings_one_update_to_an_async_step(tmp_path, monkeypatch, carry):
    # FedAvg's fast devices arrive twice in some steps of this config (test_async); a device that keeps state
    # starts again only in the next step, so each of its updates trains from the state the previous one left.
    from edgeweave.platform.run.client import Client
    from edgeweave.platform.run.servers import build_server
    from tests.unit.test_async import async_raw, parts, run_steps

    monkeypatch.chdir(ROOT)
    for strategy, twice in (({"name": "fedavg"}, True), ({"name": "carry"}, False)):
        raw = async_raw(
            tmp_path,
            aggregation={"buffer": 8, "concurrency": 3},
            devices={"resources": {}},
            training={"rounds": 6},
            strategy=strategy,
            plugins=[str(STATEFUL / "plugin.py")],
        )
        cfg = build_config(raw)
        data, part = parts(cfg)
        server, client = build_server(cfg, data, part), Client(cfg, data, part)
        steps = []
        run_steps(server, client, 0, 6, steps)
        assert any(len({r["device"] for r in recs}) < len(recs) for _, recs in steps) == twice
    assert server.half.holders == server.states.seen.sum() > 0
