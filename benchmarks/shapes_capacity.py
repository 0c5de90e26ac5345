"""Does model capacity show on `shapes`? A linear model, the zoo's CNN and VGG-11 at two widths, trained alike.

Each model trains centrally with plain SGD (momentum 0.9, cosine-decayed rate) on the CPU, on the same
`shapes` data and for the same epochs; prints test accuracy and wall time per model as a Markdown table.
Targets: the CNN beats the linear model by at least 20 points, VGG-11 at width 0.5 beats width 0.125 by
at least 10.

    python benchmarks/shapes_capacity.py [--classes 10 100] [--train 10000] [--epochs 3] [--smoke-test]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.data import ArrayData, load_dataset
from edgeweave.platform.models import build_model

# name, width, learning rate: one rate for both VGG widths (0.05 left VGG-11 at width 0.5 at chance)
MODELS = (("linear", 1.0, 0.01), ("cnn", 1.0, 0.02), ("vgg11", 0.125, 0.02), ("vgg11", 0.5, 0.02))


def make_model(name: str, width: float, data: ArrayData, seed: int) -> nn.Module:
    """One nn.Linear on the flattened pixels for `linear`, else the zoo's model at `width`."""
    if name == "linear":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(data.input_shape), data.num_classes))
    choice = build_config({"data": {"name": "shapes"}, "model": {"name": name, "width": width}}).model
    return build_model(choice, data.input_shape, data.num_classes, seed)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum()) for i in range(0, len(x), 1000))
    return hits / len(x)


def train(model: nn.Module, data: ArrayData, epochs: int, batch_size: int, lr: float, seed: int) -> None:
    """SGD on shuffled mini-batches, the rate decayed to zero along a cosine over all steps."""
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    per_epoch = math.ceil(len(x) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
            schedule.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, nargs="+", default=[10])
    p.add_argument("--train", type=int, default=10000, help="training images")
    p.add_argument("--test", type=int, default=2000, help="test images")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    p.add_argument("--smoke-test", action="store_true", help="256 images, one epoch")
    args = p.parse_args()
    if args.smoke_test:
        args.classes, args.train, args.test, args.epochs = [10], 256, 128, 1
    torch.set_num_threads(args.threads)
    rows: list[dict] = []
    generated: dict[int, float] = {}  # classes -> seconds to generate the data
    print("| classes | model | width | parameters | test accuracy | time (s) |")
    print("|---:|---|---:|---:|---:|---:|")
    for classes in args.classes:
        t0 = time.perf_counter()
        section = {"name": "shapes", "num_classes": classes, "train_samples": args.train, "test_samples": args.test}
        data = load_dataset(build_config({"data": section}).data, args.seed)
        generated[classes] = time.perf_counter() - t0
        x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
        for name, width, lr in MODELS:
            t0 = time.perf_counter()
            model = make_model(name, width, data, args.seed)
            train(model, data, args.epochs, args.batch_size, lr, args.seed)
            row = {
                "classes": classes,
                "model": name,
                "width": width,
                "lr": lr,
                "parameters": sum(q.numel() for q in model.parameters()),
                "accuracy": accuracy(model, x_test, y_test),
                "seconds": time.perf_counter() - t0,
            }
            rows.append(row)
            print(
                f"| {classes} | {name} | {width:g} | {row['parameters']:,} | {row['accuracy']:.1%} | "
                f"{row['seconds']:.0f} |",
                flush=True,
            )
    print(
        f"\n{args.train} training and {args.test} test images, {args.epochs} epochs, batch {args.batch_size}, "
        f"seed {args.seed}, {args.threads} threads; chance is 1 / classes. Time: training and testing one model."
    )
    for classes in args.classes:
        acc = {(r["model"], r["width"]): r["accuracy"] for r in rows if r["classes"] == classes}
        print(
            f"{classes} classes: CNN - linear = {100 * (acc['cnn', 1.0] - acc['linear', 1.0]):+.1f} points "
            f"(target >= 20), VGG-11 w0.5 - w0.125 = {100 * (acc['vgg11', 0.5] - acc['vgg11', 0.125]):+.1f} "
            f"points (target >= 10); data generated in {generated[classes]:.1f} s"
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {**vars(args), "out": str(args.out)}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
