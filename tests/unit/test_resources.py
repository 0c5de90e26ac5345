import json

import numpy as np
import pytest

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.devices.resources import build_resources
from tests.helpers import tiny_raw


def model(tmp_path, seed=0, **resources):
    raw = tiny_raw(tmp_path)
    raw["devices"] = {**raw["devices"], "resources": resources}
    return build_resources(build_config(raw).devices.resources, seed)


def test_constant_is_always_available(tmp_path):
    avail, speed = model(tmp_path, name="constant", multiplier=0.5).state(np.arange(5), 3, 100.0)
    assert avail.all() and (speed == 0.5).all()


def test_uniform_redraws_every_round_within_bounds(tmp_path):
    m = model(tmp_path, name="uniform", low=0.2, high=0.6, availability=0.7)
    ids = np.arange(20000)
    avail0, s0 = m.state(ids, 0, 0.0)
    avail1, s1 = m.state(ids, 1, 0.0)
    assert s0.min() >= 0.2 and s0.max() <= 0.6
    assert abs(s0.mean() - 0.4) < 0.01
    assert abs(avail0.mean() - 0.7) < 0.015
    assert not np.array_equal(s0, s1)
    np.testing.assert_array_equal(m.state(ids, 0, 999.0)[1], s0)  # keyed by round


def test_markov_stationary_share_and_switch_rates(tmp_path):
    m = model(tmp_path, name="markov", period=10, p_off=0.1, p_on=0.3, p_slow=0.2, p_fast=0.4, slow=0.25)
    ids = np.arange(20000)
    on5, speed5 = m.state(ids, 0, 55.0)
    on6, _ = m.state(ids, 0, 65.0)
    assert abs(on5.mean() - 0.3 / 0.4) < 0.015  # stationary share on = p_on / (p_on + p_off)
    assert abs((speed5 == 1.0).mean() - 0.4 / 0.6) < 0.015
    assert set(np.unique(speed5)) == {0.25, 1.0}
    assert abs((~on6[on5]).mean() - 0.1) < 0.015  # on -> off per step
    assert abs(on6[~on5].mean() - 0.3) < 0.02  # off -> on per step
    np.testing.assert_array_equal(m.state(ids, 7, 59.0)[0], on5)  # constant within a step


def test_markov_is_a_pure_function_of_seed_device_and_time(tmp_path):
    m = model(tmp_path, name="markov", period=5)
    ids = np.arange(1000)
    on, speed = m.state(ids, 0, 123.0)
    sub = np.array([999, 3, 500])
    on_sub, speed_sub = model(tmp_path, name="markov", period=5).state(sub, 4, 123.0)
    np.testing.assert_array_equal(on_sub, on[sub])
    np.testing.assert_array_equal(speed_sub, speed[sub])
    other, _ = model(tmp_path, seed=1, name="markov", period=5).state(ids, 0, 123.0)
    assert not np.array_equal(on, other)


def test_markov_rejects_antipersistent_chains(tmp_path):
    with pytest.raises(UserError, match=r"devices.resources = .*p_off \+ p_on = 1.2 must be in \(0, 1\]"):
        model(tmp_path, name="markov", p_off=0.6, p_on=0.6)


def test_diurnal_period_and_phase(tmp_path):
    m = model(tmp_path, name="diurnal", period=1000, mean=0.5, amplitude=0.4, slow=0.5, slot=10)
    ids = np.arange(20000)
    c = m.cycle(ids, 250.0)
    np.testing.assert_allclose(m.cycle(ids, 1250.0), c, atol=1e-9)  # one period later
    np.testing.assert_allclose(m.cycle(ids, 750.0), -c, atol=1e-9)  # half a period later
    assert abs(c.mean()) < 0.02  # phases spread uniformly
    avail, speed = m.state(ids, 0, 250.0)
    expected = np.clip(0.5 + 0.4 * c, 0, 1)
    idle, busy = c > 0.8, c < -0.8
    assert abs(avail[idle].mean() - expected[idle].mean()) < 0.03
    assert avail[idle].mean() > avail[busy].mean() + 0.5
    assert speed[idle].min() > 0.9 and speed[busy].max() < 0.6


def write_csv(path, rows):
    path.write_text("device,time,available,speed\n" + "".join(f"{','.join(map(str, r))}\n" for r in rows))


def test_trace_csv_steps_cycles_and_maps_devices(tmp_path):
    p = tmp_path / "t.csv"
    write_csv(p, [(7, 0, 1, 1.0), (7, 10, 0, 0.5), (9, 0, 1, 0.2), (9, 5, 1, 0.8)])
    m = model(tmp_path, name="trace", path=str(p), cycle=20)
    ids = np.array([0, 1, 2])  # 0 -> series of device 7, 1 -> device 9, 2 -> device 7 again
    avail, speed = m.state(ids, 0, 12.0)
    assert list(avail) == [False, True, False] and list(speed) == [0.5, 0.8, 0.5]
    avail, speed = m.state(ids, 0, 24.0)  # wraps to t = 4
    assert list(avail) == [True, True, True] and list(speed) == [1.0, 0.2, 1.0]


def test_trace_json_equals_csv(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(
        json.dumps({"series": [{"device": 0, "time": [0, 10], "available": [True, False], "speed": [1.0, 0.5]}]})
    )
    avail, speed = model(tmp_path, name="trace", path=str(p)).state(np.array([3]), 0, 11.0)
    assert list(avail) == [False] and list(speed) == [0.5]


@pytest.mark.parametrize(
    "content, message",
    [
        ("device,time\n0,1\n", "line 1: the header must name available, device, speed, time"),
        ("device,time,available,speed\n0,x,1,1.0\n", "line 2: could not convert string to float"),
        ("device,time,available,speed\n0,0,maybe,1.0\n", "line 2: available = 'maybe' is not 0/1/true/false"),
        ("device,time,available,speed\n0,0,1,0\n", "speed: every speed multiplier must be > 0"),
        ("device,time,available,speed\n", "empty: the trace has no rows"),
    ],
)
def test_malformed_traces_name_the_place(tmp_path, content, message):
    p = tmp_path / "t.csv"
    p.write_text(content)
    with pytest.raises(UserError, match=f"devices.resources.path = '.*t.csv': {message}"):
        model(tmp_path, name="trace", path=str(p))


def test_missing_trace_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        model(tmp_path, name="trace", path=str(tmp_path / "none.csv"))


def test_a_trace_is_read_once_with_the_config_and_travels_with_it(tmp_path):
    """Workers get the config pickled, with the trace's bytes: a file changed or gone later changes nothing."""
    import pickle

    p = tmp_path / "t.csv"
    write_csv(p, [(0, 0, 1, 1.0), (0, 10, 0, 0.5)])
    raw = tiny_raw(tmp_path)
    raw["devices"] = {**raw["devices"], "resources": {"name": "trace", "path": str(p)}}
    cfg = build_config(raw)
    write_csv(p, [(0, 0, 1, 0.25)])  # edited under the run
    assert build_resources(cfg.devices.resources, 0).state(np.array([0]), 0, 11.0)[1].tolist() == [0.5]
    p.unlink()
    worker_cfg = pickle.loads(pickle.dumps(cfg))  # as a Ray worker receives it
    avail, speed = build_resources(worker_cfg.devices.resources, 0).state(np.array([0]), 0, 11.0)
    assert avail.tolist() == [False] and speed.tolist() == [0.5]


def test_next_change_is_where_the_state_can_change_next(tmp_path):
    """Each model says when a device's state may next change; in between, `state` is constant."""
    p = tmp_path / "t.csv"
    write_csv(p, [(7, 0, 1, 1.0), (7, 10, 0, 0.5), (9, 0, 1, 0.2), (9, 5, 1, 0.8)])
    ids = np.array([0, 1])
    trace = model(tmp_path, name="trace", path=str(p), cycle=20)
    assert list(trace.next_change(ids, 0, 3.0)) == [10.0, 5.0]
    assert list(trace.next_change(ids, 0, 12.0)) == [20.0, 20.0]  # the cycle wraps to its start
    assert list(trace.next_change(ids, 0, 26.0)) == [30.0, 40.0]
    assert list(model(tmp_path, name="trace", path=str(p)).next_change(ids, 0, 12.0)) == [np.inf, np.inf]
    assert list(model(tmp_path, name="markov", period=2.0).next_change(ids, 0, 3.0)) == [4.0, 4.0]
    assert list(model(tmp_path, name="markov", period=2.0).next_change(ids, 0, 4.0)) == [6.0, 6.0]
    assert list(model(tmp_path, name="diurnal", slot=600.0).next_change(ids, 0, 100.0)) == [600.0, 600.0]
    assert np.isinf(model(tmp_path, name="uniform").next_change(ids, 3, 5.0)).all()  # redrawn per round only
    assert list(model(tmp_path, name="uniform", period=0.5).next_change(ids, 3, 5.2)) == [5.5, 5.5]
    assert np.isinf(model(tmp_path, name="constant").next_change(ids, 0, 1.0)).all()
    for m in (
        trace,
        model(tmp_path, name="markov", period=2.0),
        model(tmp_path, name="uniform", period=0.5),
        model(tmp_path, name="diurnal", slot=600.0, period=3600.0),
    ):
        for t in (0.0, 3.3, 12.7, 599.0):
            nxt = m.next_change(ids, 0, t)
            assert (nxt > t).all()
            for i, device in enumerate(ids[:, None]):
                before = m.state(device, 0, t)
                for inside in np.linspace(t, min(nxt[i], t + 1000.0), 6)[:-1] + 1e-9:
                    assert m.state(device, 0, float(inside)) == before
