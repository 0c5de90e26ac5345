"""What a method adds to a device's local objective: FedProx's proximal term on every training path, and
SCAFFOLD's correction with the control variate a device keeps between rounds."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.methods import Job
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.run.checkpoint import load_checkpoint, run_fingerprint, save_checkpoint
from edgeweave.platform.run.client import Client
from edgeweave.platform.run.servers import build_server
from edgeweave.platform.train.sgd import SGDSettings
from edgeweave.platform.train.sliced_training import SubModels, train_per_batch
from edgeweave.platform.train.submodel import Slicer
from edgeweave.platform.train.training import train_local
from tests.helpers import tiny_raw
from tests.unit.test_async import async_raw, parts
from tests.unit.test_training import blobs, tiny_model


@settings(max_examples=20, deadline=None)
@given(
    mu=st.floats(1e-3, 5.0),
    lr=st.floats(0.005, 0.2),
    momentum=st.sampled_from([0.0, 0.3, 0.9]),
    steps=st.integers(1, 9),
    seed=st.integers(0, 1000),
)
def test_the_proximal_term_is_the_gradient_of_mu_half_the_squared_distance_to_the_start(mu, lr, momentum, steps, seed):
    x, y = blobs(seed=seed)
    prox, plain = tiny_model(seed), tiny_model(seed)
    start = [p.detach().clone() for p in plain.parameters()]

    def with_term(out, target):  # Li et al.'s local objective, differentiated by autograd
        return F.cross_entropy(out, target) + mu / 2 * sum(
            ((p - s) ** 2).sum() for p, s in zip(plain.parameters(), start)
        )

    s = SGDSettings(lr=lr, momentum=momentum, batch_size=8, steps=steps)
    train_local(
        prox,
        x,
        y,
        SGDSettings(lr=lr, momentum=momentum, batch_size=8, steps=steps, prox_mu=mu),
        torch.Generator().manual_seed(seed),
    )
    train_local(plain, x, y, s, torch.Generator().manual_seed(seed), loss_fn=with_term)
    for a, b in zip(prox.parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_per_batch_engine_takes_the_same_proximal_steps(make_config):
    cfg = make_config(model={"name": "cnn", "width": 0.5})
    model = build_model_of(cfg)
    slicer = Slicer(model, (1, 8, 8))
    layout = FlatLayout(model)
    x, y = torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.randint(0, 10, (40,))
    s = SGDSettings(lr=0.05, momentum=0.9, weight_decay=1e-3, batch_size=8, steps=6, prox_mu=0.5)
    start = torch.from_numpy(layout.flatten(model))
    per_batch = start.clone()
    plan = slicer.full_plan()
    train_per_batch(SubModels(slicer), per_batch, x, y, s, torch.Generator().manual_seed(2), lambda k: plan)
    train_local(model, x, y, s, torch.Generator().manual_seed(2))
    torch.testing.assert_close(per_batch, torch.from_numpy(layout.flatten(model)), rtol=1e-5, atol=1e-6)
    assert not torch.equal(per_batch, start)


def build_model_of(cfg):
    from edgeweave.platform.models import build_model

    return build_model(cfg.model, (1, 8, 8), 10, cfg.seed)


def scaffold_cfg(tmp_path, **training):
    return build_config(
        tiny_raw(
            tmp_path,
            strategy={"name": "scaffold"},
            devices={"count": 6, "per_round": 3},
            training={"rounds": 4, "local_steps": 5, "momentum": 0.0, **training},
        )
    )


@settings(max_examples=8, deadline=None)
@given(lr=st.floats(0.01, 0.2), scale=st.floats(1e-3, 1.0), seed=st.integers(0, 2**31 - 1))
def test_scaffold_keeps_option_two_of_the_paper_under_plain_sgd(tmp_path_factory, lr, scale, seed):
    # c_i+ = c_i - c + (x - y) / (K lr): the mean loss gradient along the device's own steps
    cfg = scaffold_cfg(tmp_path_factory.mktemp("s"), lr=lr)
    data, part = parts(cfg)
    client = Client(cfg, data, part)
    g = np.random.default_rng(seed)
    weights = client.weights()
    learned = client.layout.learned(client.model)
    c, own = (np.where(learned, g.normal(scale=scale, size=weights.size), 0).astype(np.float32) for _ in range(2))
    partial = client.run(0, weights, [Job(2)], c, {2: {"control": own}})
    trained = partial.sums / partial.counts
    kept = partial.states[2]["control"]
    option_two = own - c + (weights - trained) / (5 * lr)
    np.testing.assert_allclose(kept[learned], option_two[learned], rtol=2e-3, atol=2e-4 * max(1.0, scale))
    assert not kept[~learned].any()  # buffers: no gradient, no control variate


def test_scaffold_moves_the_server_variate_by_the_devices_changes_over_n_and_resumes_exactly(tmp_path):
    cfg = scaffold_cfg(tmp_path)
    data, part = parts(cfg)

    def go(server, first, last):
        client = Client(cfg, data, part)
        for r in range(first, last):
            jobs, _ = server.plan(r)
            before = {j.device: server.states.get(j.device) for j in jobs}
            control = server.half.control.copy()
            partial = client.run(r, server.weights, jobs, server.shared, server.stored(jobs))
            server.update([partial])
            moved = sum(partial.states[d]["control"].astype(np.float64) - before[d].get("control", 0.0) for d in before)
            np.testing.assert_allclose(server.half.control, control + moved / 6, rtol=1e-6, atol=1e-9)
            for d in before:
                np.testing.assert_array_equal(server.states.get(d)["control"], partial.states[d]["control"])
        return server

    whole = go(build_server(cfg, data, part), 0, 4)
    assert whole.states.seen.sum() >= 3 and np.abs(whole.half.control).max() > 0
    stamp = run_fingerprint(cfg)
    save_checkpoint(tmp_path / "ck", go(build_server(cfg, data, part), 0, 1).snapshot(1, []), stamp)
    save_checkpoint(tmp_path / "ck", go(build_server(cfg, data, part), 0, 2).snapshot(2, []), stamp)
    assert [p.name for p in (tmp_path / "ck").glob("device-state-*")] == ["device-state-2"]  # the older one went
    resumed = build_server(cfg, data, part)
    resumed.restore(load_checkpoint(tmp_path / "ck", stamp))
    go(resumed, 2, 4)
    np.testing.assert_array_equal(resumed.weights, whole.weights)
    np.testing.assert_array_equal(resumed.half.control, whole.half.control)
    np.testing.assert_array_equal(resumed.states.rows["control"], whole.states.rows["control"])


def test_scaffold_refuses_async_in_one_line(tmp_path):
    with pytest.raises(UserError, match=r"^strategy\.name = 'scaffold': needs aggregation\.mode: sync; "):
        build_config(async_raw(tmp_path, strategy={"name": "scaffold"}))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_fedprox_with_a_sub_model_method_resumes_exactly(tmp_path, mode):
    strategy = {"name": "fjord", "rates": {"strong": 1.0, "medium": 0.5, "weak": 0.25}}
    training = {"prox_mu": 0.3, "rounds": 4}
    raw = (
        async_raw(tmp_path, strategy=strategy, training=training)
        if mode == "async"
        else tiny_raw(tmp_path, strategy=strategy, training=training)
    )
    cfg = build_config(raw)
    data, part = parts(cfg)

    def go(server, first, last):
        client = Client(server.cfg, data, part)
        for r in range(first, last):
            units = server.plan_units(r)
            server.fold([[client.run(u.version, u.weights, u.jobs, server.shared)] for u in units])
        return server

    whole = go(build_server(cfg, data, part), 0, 4)
    plain = go(build_server(build_config({**raw, "training": {**raw["training"], "prox_mu": 0.0}}), data, part), 0, 4)
    assert not np.array_equal(whole.weights, plain.weights)  # the term changed the training
    stamp = run_fingerprint(cfg)
    save_checkpoint(tmp_path / "ck", go(build_server(cfg, data, part), 0, 2).snapshot(2, []), stamp)
    resumed = build_server(cfg, data, part)
    resumed.restore(load_checkpoint(tmp_path / "ck", stamp))
    np.testing.assert_array_equal(go(resumed, 2, 4).weights, whole.weights)
