"""edgeweave's benchmark workload as a Flower app (Message API), run on Flower's simulation engine.

The Flower half of benchmarks/vs_flower.py; it runs in Flower's own virtualenv, where edgeweave is
installed without its dependencies, so it uses only edgeweave.platform's pure-PyTorch parts. It does
edgeweave's work step for step: the same data and partition (generated here, from the config's seed),
the same initial weights, the devices edgeweave's sampler picked for each round (SEQUENCE, written by
vs_flower.py), the same mini-batches per device (seeded by round and device), FedAvg weighted by
samples, and a central evaluation every `training.eval_every` rounds and at the last.

Each round's k-th device goes to the k-th SuperNode (ids sorted), so Flower runs one SuperNode per
device of a round and each message's config names the device whose shard to train. The training
data reaches the client actors as memory-mapped .npy files, generated once in this process.

    .venv-flower/bin/python benchmarks/flower_app/fedavg_app.py CONFIG SEQUENCE OUT [--workers 2]

writes OUT/result.json (accuracy per evaluated round, versions) and OUT/weights.npz (final weights).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import flwr
import numpy as np
import ray
import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.simulation import run_simulation

from edgeweave.platform.config.schema import ExperimentConfig, load_config
from edgeweave.platform.core.seeding import torch_generator
from edgeweave.platform.data import ArrayData, load_dataset
from edgeweave.platform.models import build_model
from edgeweave.platform.partition import partition_data
from edgeweave.platform.train.sgd import sgd_settings
from edgeweave.platform.train.training import batch_order

TRAINING_FILES = ("x", "y", "indices", "offsets")  # the .npy files client actors map: samples, labels, partition


class DeviceTrainer:
    """What a client actor keeps between messages: the config, the mapped training data, a model to load into."""

    def __init__(self, config: str, data: str, classes: int) -> None:
        torch.set_num_threads(1)  # one thread per client, as each edgeweave worker has
        self.cfg = load_config(config)
        self.x, self.y, self.indices, self.offsets = (
            np.load(Path(data) / f"{name}.npy", mmap_mode="r") for name in TRAINING_FILES
        )
        self.model = build_model(self.cfg.model, tuple(self.x.shape[1:]), classes, self.cfg.seed)
        self.settings = sgd_settings(self.cfg)

    def train(self, weights: dict[str, torch.Tensor], round_: int, device: int) -> tuple[dict[str, torch.Tensor], int]:
        """Local SGD on the device's shard from `weights`; returns the new weights and the samples trained."""
        ids = np.asarray(self.indices[self.offsets[device] : self.offsets[device + 1]])
        x, y = torch.from_numpy(np.asarray(self.x[ids])), torch.from_numpy(np.asarray(self.y[ids]))
        self.model.load_state_dict(weights)
        self.model.train()
        s = self.settings
        opt = torch.optim.SGD(self.model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
        for batch in batch_order(len(ids), s, torch_generator(self.cfg.seed, round_, device)):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(self.model(x[batch]), y[batch]).backward()
            opt.step()
        return self.model.state_dict(), len(ids)


@lru_cache(maxsize=1)
def trainer(config: str, data: str, classes: int) -> DeviceTrainer:
    """The actor's trainer, made at its first message."""
    return DeviceTrainer(config, data, classes)


client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the device the message names on its shard, from the message's weights."""
    config = msg.content["config"]
    local = trainer(str(config["config"]), str(config["data"]), int(config["classes"]))
    weights, samples = local.train(
        msg.content["arrays"].to_torch_state_dict(), int(config["server-round"]) - 1, int(config["device"])
    )
    return Message(
        RecordDict({"arrays": ArrayRecord(weights), "metrics": MetricRecord({"num-examples": samples})}), reply_to=msg
    )


class SequencedFedAvg(FedAvg):
    """FedAvg over given devices per round: round r's k-th device goes to the k-th SuperNode (ids sorted)."""

    def __init__(self, sequence: Sequence[Sequence[int]], nodes: int) -> None:
        super().__init__(fraction_evaluate=0.0)  # no federated evaluation: the server evaluates centrally
        self.sequence, self.nodes = sequence, nodes

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        while len(nodes := sorted(grid.get_node_ids())) < self.nodes:  # SuperNodes register as the run starts
            time.sleep(0.05)
        return [
            Message(
                RecordDict(
                    {
                        self.arrayrecord_key: arrays,
                        self.configrecord_key: ConfigRecord({**config, "server-round": server_round, "device": device}),
                    }
                ),
                dst_node_id=node,
                message_type=MessageType.TRAIN,
            )
            for node, device in zip(nodes, self.sequence[server_round - 1])
        ]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        failed = [m.error.reason for m in replies if m.has_error()]
        if failed or len(replies) != len(self.sequence[server_round - 1]):
            raise RuntimeError(f"round {server_round}: {len(replies)} replies, failures: {failed}")
        return super().aggregate_train(server_round, replies)


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """Accuracy and mean cross-entropy on (x, y)."""
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            out = model(x[i : i + batch_size])
            loss += float(F.cross_entropy(out, y[i : i + batch_size], reduction="sum"))
            correct += int((out.argmax(1) == y[i : i + batch_size]).sum())
    return correct / len(y), loss / len(y)


def server_app(
    cfg: ExperimentConfig, config: Path, sequence: list[list[int]], data_dir: Path, data: ArrayData, out: Path
) -> ServerApp:
    """The ServerApp: FedAvg over the given devices, evaluated centrally; writes the result files into `out`."""
    app = ServerApp()
    rounds, every = len(sequence), cfg.training.eval_every

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed)
        x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
        accuracies: dict[int, float] = {}

        def central(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
            if server_round == 0 or (server_round % every and server_round != rounds):
                return None
            model.load_state_dict(arrays.to_torch_state_dict())
            accuracy, loss = evaluate(model, x_test, y_test, cfg.training.eval_batch_size)
            accuracies[server_round] = accuracy
            return MetricRecord({"accuracy": accuracy, "loss": loss})

        strategy = SequencedFedAvg(sequence, max(len(r) for r in sequence))
        result = strategy.start(
            grid,
            ArrayRecord(model.state_dict()),
            num_rounds=rounds,
            evaluate_fn=central,
            train_config=ConfigRecord({"config": str(config), "data": str(data_dir), "classes": data.num_classes}),
        )
        np.savez(out / "weights.npz", **{k: a.numpy() for k, a in result.arrays.items()})
        (out / "result.json").write_text(
            json.dumps(
                {
                    "accuracy": accuracies[rounds],
                    "accuracies": accuracies,
                    "versions": {"flwr": flwr.__version__, "ray": ray.__version__, "torch": torch.__version__},
                },
                indent=1,
            )
        )

    return app


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, help="the workload's YAML (edgeweave's config)")
    p.add_argument("sequence", type=Path, help="JSON: the device ids of each round")
    p.add_argument("out", type=Path, help="directory for result.json and weights.npz")
    p.add_argument("--workers", type=int, default=2, help="concurrent clients, one CPU and one thread each")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # the server's evaluation, like edgeweave's driver, on one thread
    cfg = load_config(args.config)
    sequence = json.loads(args.sequence.read_text())
    data = load_dataset(cfg.data, cfg.seed)
    partition = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed, data.owners)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vs-flower-data-") as tmp:
        for name, array in zip(TRAINING_FILES, (data.x_train, data.y_train, partition.indices, partition.offsets)):
            np.save(Path(tmp) / f"{name}.npy", array)
        run_simulation(
            server_app(cfg, args.config.resolve(), sequence, Path(tmp), data, args.out),
            client_app,
            num_supernodes=max(len(r) for r in sequence),
            backend_config={
                "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                # a fresh local Ray of `workers` CPUs, so `workers` clients run at once; no dashboard
                "init_args": {
                    "address": "local",
                    "num_cpus": args.workers,
                    "include_dashboard": False,
                    "dashboard_host": "127.0.0.1",
                },
            },
        )
    return 0


if __name__ == "__main__":
    # Run the module under its own name: Ray's workers then import it for the ClientApp (and keep each
    # actor's trainer between messages) instead of getting a pickled copy of __main__ with every message.
    import fedavg_app

    sys.exit(fedavg_app.main())
