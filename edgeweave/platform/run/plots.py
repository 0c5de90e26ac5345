"""The run's figures: accuracy against virtual time and FLOPs, and what the devices went through."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from edgeweave.platform.config.schema import ExperimentConfig  # noqa: E402
from edgeweave.platform.devices.timeline import held  # noqa: E402
from edgeweave.platform.devices.view import DeviceView  # noqa: E402

OUTCOMES = {"full": ("tab:green", "o"), "partial": ("tab:orange", "^"), "dropped": ("tab:red", "x")}
LINES = ("tab:blue", "tab:purple", "tab:brown", "tab:gray")


def outcome(record: dict[str, Any]) -> str:
    return "dropped" if record["dropped"] else "partial" if record["partial"] else "full"


def round_speed(
    view: DeviceView, device: int, round_: int, start: float, finish: float, limit: int = 400
) -> tuple[np.ndarray, np.ndarray]:
    """The device's speed from the round's start to its finish, change by change (at most `limit`)."""
    segment = held(view.segment(device, round_))  # checked: a model that does not move on raises
    times: list[float] = []
    speeds: list[float] = []
    t = start
    while t < finish and len(times) < limit:
        _, speed, until = segment(t)
        times.append(t)
        speeds.append(speed)
        t = until
    _, last, _ = segment(finish)
    return np.array(times + [finish]), np.array(speeds + [speeds[-1] if speeds else last])


def time_axis(seconds: float) -> tuple[float, str]:
    """A divisor and a unit that suit a span of virtual time."""
    if seconds >= 2 * 3600:
        return 3600.0, "hours"
    return (60.0, "minutes") if seconds >= 120 else (1.0, "seconds")


def plot_accuracy(history: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Test accuracy against virtual time and against cumulative training FLOPs."""
    pts = [m for m in history if m.get("test_accuracy") is not None]
    scale, unit = time_axis(history[-1]["virtual_time"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    axes[0].plot([m["virtual_time"] / scale for m in pts], [m["test_accuracy"] for m in pts], marker=".")
    axes[0].set_xlabel(f"virtual time ({unit})")
    axes[0].set_ylabel("test accuracy")
    axes[1].plot([m["cumulative_flops"] for m in pts], [m["test_accuracy"] for m in pts], marker=".")
    axes[1].set_xlabel("training FLOPs, all devices")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_devices(
    cfg: ExperimentConfig, history: Sequence[dict[str, Any]], devices_jsonl: Path, path: Path, per_tier: int = 2
) -> Path:
    """Left, one panel per tier: the speed over virtual time of a few of its devices (grey where
    unavailable) and the outcome of each round they took part in. Right: the outcomes of all
    device-rounds, by tier."""
    d = cfg.devices
    asynchronous = cfg.aggregation.mode == "async"
    rounds_word = "server step" if asynchronous else "round"
    view = DeviceView(cfg)
    records = [json.loads(line) for line in devices_jsonl.read_text().splitlines() if line]
    counts = Counter((r["tier"], outcome(r)) for r in records)
    taken = Counter(r["device"] for r in records if r["device"] >= 0)
    starts = np.array([m["virtual_start"] for m in history])
    rounds = [int(m["round"]) for m in history]
    scale, unit = time_axis(history[-1]["virtual_time"])
    fig = plt.figure(figsize=(12, 1.2 + 1.6 * len(d.tiers)))
    grid = fig.add_gridspec(len(d.tiers), 2, width_ratios=[2.2, 1])
    for k, tier in enumerate(d.tiers):
        ax = fig.add_subplot(grid[k, 0])
        members = np.flatnonzero(view.tier_of == k)
        shown = sorted(members.tolist(), key=lambda i: -taken.get(i, 0))[:per_tier]
        states = [view.state(np.array(shown, np.int64), r, float(t)) for r, t in zip(rounds, starts)]
        for j, dev in enumerate(shown):
            speed = np.array([st[1][j] for st in states])
            avail = np.array([st[0][j] for st in states])
            ax.step(
                starts / scale,
                np.where(avail, speed, np.nan),
                where="post",
                color=LINES[j % len(LINES)],
                label=f"device {dev}",
            )
            ax.step(starts / scale, np.where(avail, np.nan, speed), where="post", color="0.8")
            for r in records:
                if r["device"] == dev:
                    # an async device starts on its own, on the model version it trains (its resources' round)
                    start = r["start"] if "start" in r else starts[rounds.index(r["round"])]
                    t, v = round_speed(view, dev, r.get("version", r["round"]), start, r["finish"])
                    ax.step(t / scale, v, where="post", color=LINES[j % len(LINES)], lw=2.2)
                    colour, marker = OUTCOMES[outcome(r)]
                    ax.scatter(r["finish"] / scale, v[-1], color=colour, marker=marker, s=22, zorder=3)
        ax.set_ylabel(f"{tier.name}\nFLOP/s")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="lower left")
        if k == 0:
            ax.set_title(
                f"speed at {rounds_word} starts (grey: unavailable); thick: from each start to the finish (marker)",
                fontsize=9,
            )
        if k == len(d.tiers) - 1:
            ax.set_xlabel(f"virtual time ({unit})")
    bars = fig.add_subplot(grid[:, 1])
    names = [t.name for t in d.tiers] + (["central"] if counts.get(("central", "full")) else [])
    bottom = np.zeros(len(names))
    for kind, (colour, _) in OUTCOMES.items():
        vals = np.array([counts.get((n, kind), 0) for n in names])
        bars.bar(names, vals, bottom=bottom, color=colour, label=kind)
        bottom += vals
    bars.set_ylabel("device updates" if asynchronous else "device-rounds")
    deadline = f"{d.deadline:g} s" if d.deadline else "none"
    bars.set_title(f"outcomes: stragglers {d.stragglers}, deadline {deadline}")
    bars.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
