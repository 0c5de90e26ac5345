"""Every method books what its devices trained: steps, FLOPs and finish times, with speed changing mid-round.

The devices' training is instrumented (the model or sub-model of each mini-batch, priced by the
FLOP counter) and compared with the driver's device records. The finish time is replayed from
the trained mini-batches over the device's own speed changes.
"""

import numpy as np
import pytest

from edgeweave.platform.data import load_dataset
from edgeweave.platform.devices.clock import batch_sizes
from edgeweave.platform.devices.timeline import fixed_rule
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.models.flops import measure_flops_per_sample
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.client import Client
from edgeweave.platform.run.server import Server
from tests.unit.test_distreal import real_front

RATES = {"strong": 1.0, "medium": 0.5, "weak": 0.25}
STRATEGIES = {
    "fedavg": {"name": "fedavg"},
    "central": {"name": "central"},
    "fd": {"name": "fd", "rates": RATES},
    "heterofl": {"name": "heterofl", "rates": RATES},
    "fjord": {"name": "fjord", "rates": RATES},
    "fedrolex": {"name": "fedrolex", "rates": RATES},
    "small": {"name": "small", "rates": RATES},
    "scaffold": {"name": "scaffold"},
    "fedavg-prox": {"name": "fedavg", "prox_mu": 0.01},  # FedProx's term: 3 FLOPs per trained element a step
    "heterofl-prox": {"name": "heterofl", "rates": RATES, "prox_mu": 0.1},
    "heterofl-budget": {"name": "heterofl", "rates": RATES, "rate_by": "budget"},
    "distreal": {"name": "distreal", "front": "FRONT"},
    "taskwise": {"name": "taskwise", "groups": 5, "tasks_per_device": 2},
    "taskwise-dropout": {"name": "taskwise", "groups": 5, "tasks_per_device": 2, "dropout_front": "FRONT"},
}
# Speed flips between fast and 0.3x every 2 s of virtual time; devices stay online.
SHIFTING = {"name": "markov", "period": 2.0, "p_off": 0.0, "p_on": 1.0, "p_slow": 0.5, "p_fast": 0.5, "slow": 0.3}


def test_every_method_is_in_the_books():
    """A new method must join the list above: the test below is what shows its driver books what it trained."""
    from edgeweave.platform.methods import STRATEGIES as REGISTERED

    assert {s["name"] for s in STRATEGIES.values()} == set(REGISTERED.built_in())
    assert any(s.get("prox_mu") for s in STRATEGIES.values())


@pytest.mark.parametrize("stragglers", ["partial", "drop"])
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_the_driver_books_what_each_device_trained(make_config, tmp_path, monkeypatch, name, stragglers):
    front = tmp_path / "front.json"
    devices = {
        "count": 9,
        "per_round": 9,
        "flops_per_second": 2e6,
        "deadline": 30.0,
        "stragglers": stragglers,
        "resources": SHIFTING,
    }
    plain = make_config(devices=devices)
    data = load_dataset(plain.data, plain.seed)
    real_front(plain, data, front)
    strategy = {k: (str(front) if v == "FRONT" else v) for k, v in STRATEGIES[name].items()}
    mu = strategy.pop("prox_mu", 0.0)
    # One device at a time, so the spies below see each device train (batched devices report the same
    # steps: test_batched).
    cfg = make_config(devices=devices, strategy=strategy, training={"batched": "off", "prox_mu": mu})
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    server, client = Server(cfg, data, part), Client(cfg, data, part)
    trained: dict[int, np.ndarray] = {}  # FLOPs of each mini-batch each device trained
    batch = cfg.training.batch_size
    train, train_per_batch = Client.train, Client.train_steps

    def spy_train(self, round_, job, model=None, **kwargs):
        net = model if model is not None else self.model
        per_sample = measure_flops_per_sample(net, data.input_shape, data.num_classes)
        # FedProx: w - w_start, times mu, added; SCAFFOLD: the correction added, the gradient summed
        term = (3.0 * bool(mu) + 2.0 * (name == "scaffold")) * FlatLayout(net).size if not job.pooled else 0.0
        result = train(self, round_, job, model=model, **kwargs)
        trained[job.device] = per_sample * batch_sizes(self.facts.samples(job), batch, result.steps) + term
        return result

    def spy_per_batch(self, round_, job, weights, partial, plan_for_step, steps=None, **kwargs):
        costs = []

        def priced(k):
            plan = plan_for_step(k)
            costs.append(self.slicer.flops(plan))
            return plan

        train_per_batch(self, round_, job, weights, partial, priced, steps=steps, **kwargs)
        trained[job.device] = np.array(costs, np.float64) * batch_sizes(self.facts.samples(job), batch, len(costs))

    monkeypatch.setattr(Client, "train", spy_train)
    monkeypatch.setattr(Client, "train_steps", spy_per_batch)
    changed = 0
    for round_ in range(2):
        start = server.clock
        jobs, _ = server.plan(round_)
        _, records = server.update([client.run(round_, server.weights, jobs, server.shared, server.stored(jobs))])
        for r in records:
            changed += r["speed_min"] < r["speed_max"]
            if r["dropped"]:
                assert r["device"] not in trained and r["trained_flops"] == 0 and r["steps"] == 0
                continue
            flops = trained.pop(r["device"])
            assert r["steps"] == len(flops), r
            assert r["trained_flops"] == pytest.approx(flops.sum(), rel=1e-9), r
            assert r["flops"] >= r["trained_flops"] * (1 - 1e-12)
            if r["stopped"] == "deadline":  # cut while it trained one more
                assert r["finish"] == pytest.approx(start + cfg.devices.deadline, rel=1e-9)
            elif r["tier"] != "central":
                bytes_ = server.model_bytes(round_, next(j for j in jobs if j.device == r["device"]))
                replay = server.view.timeline(round_, r["device"], start, bytes_, len(flops), fixed_rule(flops))
                assert r["finish"] == pytest.approx(replay.finish, rel=1e-9), r
        assert not trained  # every device that trained has a record
    assert changed or name == "central"  # speed did change inside some device's round
