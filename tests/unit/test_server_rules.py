"""Server update rules: each against the paper's equations element by element, trained elements only, buffers
averaged, composed with sync and async rounds and sub-models, its state in the checkpoint, its config checked."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeweave.platform.config.schema import build_config, dump_config, load_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.methods.server_rules import SERVER_RULES, build_rule
from edgeweave.platform.run.checkpoint import load_checkpoint, run_fingerprint, save_checkpoint
from edgeweave.platform.run.client import Client
from edgeweave.platform.run.servers import build_server
from edgeweave.platform.train.aggregate import average, combine
from tests.helpers import tiny_raw
from tests.unit.test_async import async_raw, parts


def reference(name, p, w, m, v, delta):
    """One element's step as Reddi et al. (Algorithm 2) and Hsu et al. write it: (new w, m, v)."""
    if name == "plain":
        return w + p["lr"] * delta, m, v
    if name == "momentum":
        v = p["beta1"] * v + delta
        return w + p["lr"] * v, m, v
    m = p["beta1"] * m + (1 - p["beta1"]) * delta
    if name == "adagrad":
        v = v + delta**2
    elif name == "adam":
        v = p["beta2"] * v + (1 - p["beta2"]) * delta**2
    else:
        v = v - (1 - p["beta2"]) * delta**2 * math.copysign(1.0, v - delta**2) if v != delta**2 else v
    return w + p["lr"] * m / (math.sqrt(v) + p["tau"]), m, v


rates = st.floats(1e-3, 3.0)
betas = st.floats(0.0, 0.999)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["plain", "momentum", "adam", "yogi", "adagrad"]),
    lr=rates,
    beta1=betas,
    beta2=betas,
    tau=st.floats(1e-6, 0.3),
    seed=st.integers(0, 2**31 - 1),
    rounds=st.integers(1, 6),
)
def test_each_rule_steps_as_its_equations_on_trained_parameters_only(name, lr, beta1, beta2, tau, seed, rounds):
    fields = SERVER_RULES.entry(name, "name")[1].model_fields
    p = {k: v for k, v in dict(lr=lr, beta1=beta1, beta2=beta2, tau=tau).items() if k in fields}
    params = SERVER_RULES.entry(name, "name")[1](**p)
    p = params.model_dump()
    g = np.random.default_rng(seed)
    size = 13
    learned = g.random(size) < 0.8  # the rest are buffers: they take the mean
    rule = build_rule(name, params, learned)
    w = g.normal(size=size).astype(np.float32)
    m = np.zeros(size)
    v = np.full(size, p.get("tau", 0.0) ** 2 if name in ("adam", "yogi", "adagrad") else 0.0)
    for _ in range(rounds):
        trained = g.random(size) < 0.7
        delta = np.where(trained, g.normal(scale=10 ** g.uniform(-4, 0), size=size), 0.0)
        new = rule.step(w, delta, trained)
        assert new.dtype == np.float32
        for i in range(size):
            if not trained[i]:
                assert new[i] == w[i]  # nobody trained it: no step, and (below) no change of state
                continue
            if not learned[i]:
                assert new[i] == pytest.approx(w[i] + delta[i], rel=1e-6, abs=1e-6)
                continue
            want, m[i], v[i] = reference(name, p, float(w[i]), m[i], v[i], delta[i])
            assert new[i] == pytest.approx(want, rel=1e-5, abs=1e-6)
        w = new
    state = rule.state()
    if "m" in state:
        np.testing.assert_allclose(state["m"][learned], m[learned], rtol=1e-9, atol=1e-12)
    if "v" in state:
        np.testing.assert_allclose(state["v"][learned], v[learned], rtol=1e-9, atol=1e-12)


def one_round(cfg):
    data, part = parts(cfg)
    server, client = build_server(cfg, data, part), Client(cfg, data, part)
    jobs, _ = server.plan(0)
    before = server.weights.copy()
    partial = client.run(0, server.weights, jobs, server.shared)
    total = combine([partial], server.layout.size)
    server.update([partial])
    return server, before, total


def test_plain_at_lr_1_is_fedavg_bit_for_bit_and_adam_steps_along_the_averaged_update(tmp_path):
    # width-nested devices: some elements nobody trains, and batch-norm statistics (buffers) in the model
    strategy = {"name": "heterofl", "rates": {"strong": 0.5, "medium": 0.5, "weak": 0.25}}
    model = {"name": "vgg11", "width": 0.125, "norm": "running"}
    plain, before, total = one_round(build_config(tiny_raw(tmp_path, strategy=strategy, model=model)))
    np.testing.assert_array_equal(plain.weights, average(before, total.sums, total.counts))
    cfg = build_config(
        tiny_raw(tmp_path, strategy=strategy, model=model, aggregation={"server": {"name": "adam", "lr": 0.03}})
    )
    adam, before, total = one_round(cfg)
    trained = total.counts > 0
    assert not trained.all()
    delta = np.where(trained, total.sums / np.where(trained, total.counts, 1) - before, 0.0)
    learned = adam.layout.learned(adam.model)
    step = 0.03 * 0.1 * delta / (np.sqrt(0.01 * delta**2 + 0.99e-6) + 1e-3)  # m, v from zero and tau^2: one step
    want = np.where(learned, before + step, before + delta)
    np.testing.assert_allclose(adam.weights, want.astype(np.float32), rtol=1e-5, atol=1e-7)
    assert np.array_equal(adam.weights[~trained], before[~trained])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_resumed_run_with_a_server_rule_equals_an_uninterrupted_one(tmp_path, mode):
    rule = {"server": {"name": "yogi", "lr": 0.02}}
    if mode == "async":
        cfg = build_config(async_raw(tmp_path, aggregation=rule))
    else:
        cfg = build_config(tiny_raw(tmp_path, aggregation=rule, training={"rounds": 4}))
    data, part = parts(cfg)

    def go(server, first, last):
        client = Client(cfg, data, part)
        for r in range(first, last):
            units = server.plan_units(r)
            server.fold([[client.run(u.version, u.weights, u.jobs, server.shared)] for u in units])
        return server

    whole = go(build_server(cfg, data, part), 0, 4)
    stamp = run_fingerprint(cfg)
    save_checkpoint(tmp_path / "ck", go(build_server(cfg, data, part), 0, 2).snapshot(2, []), stamp)
    resumed = build_server(cfg, data, part)
    state = load_checkpoint(tmp_path / "ck", stamp)
    assert set(state.rule) == {"m", "v"}
    resumed.restore(state)
    go(resumed, 2, 4)
    np.testing.assert_array_equal(resumed.weights, whole.weights)
    np.testing.assert_array_equal(resumed.rule.state()["v"], whole.rule.state()["v"])


def test_the_rule_is_configured_once_for_sync_and_async_and_reads_back(tmp_path):
    raw = tiny_raw(tmp_path, aggregation={"server": {"name": "momentum", "beta1": 0.8}})
    cfg = build_config(raw)
    assert cfg.aggregation.server.name == "momentum" and cfg.aggregation.server.beta1 == 0.8
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path).aggregation.server.params == cfg.aggregation.server.params
    assert "server" not in dump_config(build_config(tiny_raw(tmp_path)))  # the default leaves configs as they were
    with pytest.raises(
        UserError,
        match=r"^aggregation\.server\.name = 'sgd': unknown server rule; valid: adagrad, "
        r"adam, momentum, plain, yogi$",
    ):
        build_config(tiny_raw(tmp_path, aggregation={"server": {"name": "sgd"}}))
    with pytest.raises(UserError, match=r"^aggregation\.server\.tau: unknown key; valid keys: lr, beta1$"):
        build_config(tiny_raw(tmp_path, aggregation={"server": {"name": "momentum", "tau": 0.1}}))
    with pytest.raises(UserError, match=r"^aggregation\.server_lr = 0\.5: now aggregation\.server\.lr"):
        build_config(tiny_raw(tmp_path, aggregation={"mode": "async", "server_lr": 0.5}))
