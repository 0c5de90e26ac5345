"""`edgeweave bench --whole`: the whole command, process start to exit, of `edgeweave run` and of the floor.

Each workload is a config run both ways as a new process: `edgeweave run CONFIG` and the floor's
plain-PyTorch command (`floor_command`) on the same config, alternating, several repeats. While a
command runs, its process tree is sampled every `SAMPLE` seconds for its memory (proportional set
size, so pages shared through the object store or shared memory count once) and the command's
own process for its resident memory. Both write `timeline.json`; the table shows their phases side
by side, and the targets are checked on the medians.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from edgeweave.platform.core.errors import RunFailed

SAMPLE = 0.5  # seconds between looks at a running command's memory (a look reads /proc: not too often)
ROOT = Path(__file__).resolve().parents[3]  # the repository: edgeweave/platform/bench/whole.py
WORKLOADS = {  # name: (config, plugins), paths relative to the repository
    "cifar-plugin": ("benchmarks/whole/cifar.yaml", ("benchmarks/whole/cifar_data.py",)),
    "quickstart": ("configs/quickstart.yaml", ()),
}


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    """The process and every process below it."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += tree.get(p, [])
    return found


def proc_kib(pid: int, path: str, field: str) -> int:
    """A field in KiB of a process's /proc file (`status`'s VmRSS, `smaps_rollup`'s Pss); 0 where unreadable."""
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed(argv: Sequence[str], log: Path) -> dict[str, Any]:
    """Run a command to its exit (output to `log`); its wall seconds, exit code and peak memory: the tree's
    proportional set size and the command's own process's resident set (MB)."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        tree_peak = own_peak = 0
        try:
            while proc.poll() is None:
                tree_peak = max(tree_peak, sum(proc_kib(p, "smaps_rollup", "Pss") for p in descendants(proc.pid)))
                own_peak = max(own_peak, proc_kib(proc.pid, "status", "VmHWM"))
                time.sleep(SAMPLE)
        finally:  # interrupted (Ctrl+C): the command and every process it started go too
            if proc.poll() is None:
                for pid in reversed(descendants(proc.pid)):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                proc.wait()
    return {
        "wall_s": time.perf_counter() - t0,
        "rc": proc.returncode,
        "tree_peak_mb": tree_peak / 1024,
        "own_peak_mb": own_peak / 1024,
    }


def commands(workload: str, out: Path, workers: int) -> dict[str, list[str]]:
    """The two commands of a workload, each writing into its own directory under `out`."""
    config, plugins = WORKLOADS[workload]
    plugin_args = [a for p in plugins for a in ("--plugin", p)]
    return {
        "floor": [
            sys.executable,
            "-m",
            "edgeweave.platform.bench.floor_command",
            config,
            *plugin_args,
            "--workers",
            str(workers),
            "--out",
            str(out / "floor"),
        ],
        "platform": [
            str(Path(sys.executable).with_name("edgeweave")),
            "run",
            config,
            *plugin_args,
            "--set",
            f"logging.out_dir={out / 'platform'}",
            "--set",
            f"ray.num_workers={workers}",
            "--set",
            "logging.progress=false",
        ],
    }


def latest_timeline(folder: Path) -> dict[str, Any]:
    """The newest timeline.json under `folder` (a run directory inside it, or the folder itself)."""
    found = sorted(folder.rglob("timeline.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise RunFailed(f"no timeline.json under {folder}: the command failed (its log is beside it)")
    return json.loads(found[-1].read_text())


def run_whole(
    workloads: Sequence[str], repeat: int, out: Path, workers: int = 2, progress: Any = print
) -> list[dict[str, Any]]:
    """Floor and platform, alternating, `repeat` times per workload; one row per command run, also written to
    `out/whole.json` as each command ends (an interrupted bench keeps what it measured)."""
    rows: list[dict[str, Any]] = []
    total = len(workloads) * repeat * 2
    for w in workloads:
        for i in range(repeat):
            for kind, argv in commands(w, out / w / str(i), workers).items():
                progress(f"[{len(rows) + 1}/{total}] {w}, {kind}, repeat {i + 1}")
                folder = out / w / str(i) / kind
                folder.mkdir(parents=True, exist_ok=True)
                result = timed(argv, folder / "command.log")
                if result["rc"] != 0:
                    raise RunFailed(f"{' '.join(argv)} exited with {result['rc']}; see {folder / 'command.log'}")
                timeline = latest_timeline(folder)
                spans = {s["phase"]: s for s in timeline["phases"]}
                rows.append(
                    {
                        "workload": w,
                        "kind": kind,
                        "repeat": i,
                        **result,
                        "first_round_done_s": spans["first round"]["end"],
                        "phases": {name: s["seconds"] for name, s in spans.items()},
                        "repeated": timeline["repeated"],
                        "idle": timeline["idle"],
                    }
                )
                (out / "whole.json").write_text(json.dumps(rows, indent=1))
    return rows


def medians(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (workload, kind): the median of each figure and of each phase over the repeats."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["workload"], r["kind"]), []).append(r)
    return {
        key: {
            "wall_s": statistics.median(r["wall_s"] for r in g),
            "first_round_done_s": statistics.median(r["first_round_done_s"] for r in g),
            "tree_peak_mb": statistics.median(r["tree_peak_mb"] for r in g),
            "own_peak_mb": statistics.median(r["own_peak_mb"] for r in g),
            "phases": {
                name: statistics.median(r["phases"].get(name, 0.0) for r in g)
                for name in dict.fromkeys(n for r in g for n in r["phases"])
            },
            "idle": max((gap["seconds"] for r in g for gap in r["idle"]), default=0.0),
            "walls": [round(r["wall_s"], 1) for r in g],
        }
        for key, g in groups.items()
    }


def targets(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Each workload's platform against its floor: whole command, first round, idle time, memory."""
    m, lines = medians(rows), []
    for w in dict.fromkeys(r["workload"] for r in rows):
        p, f = m.get((w, "platform")), m.get((w, "floor"))
        if p is None or f is None:
            continue
        checks = [
            ("whole command / floor's", p["wall_s"] / f["wall_s"], 1.15, "x"),
            ("first round done after the floor's", p["first_round_done_s"] - f["first_round_done_s"], 3.0, " s"),
            ("longest time in no phase", p["idle"], 1.0, " s"),
            ("process tree's peak memory / floor's", p["tree_peak_mb"] / f["tree_peak_mb"], 1.1, "x"),
            # the floor's own process holds the one copy of the data its workers share
            ("the command's own peak / the floor's", p["own_peak_mb"] / f["own_peak_mb"], 1.05, "x"),
        ]
        lines.append(
            f"{w}: "
            + "; ".join(
                f"{name} {v:.2f}{unit} ({'met' if v <= bound else 'missed'}, at most {bound:g}{unit})"
                for name, v, bound, unit in checks
            )
        )
    return lines


def table(rows: Sequence[dict[str, Any]]) -> str:
    """Medians per workload and command: whole wall, first round done, memory; then the phases side by side."""
    m = medians(rows)
    lines = [
        "| workload | command | whole command (s) | runs (s) | first round done at (s) | "
        "process tree peak PSS (MB) | command's own peak RSS (MB) |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for (w, kind), r in m.items():
        lines.append(
            f"| {w} | {kind} | {r['wall_s']:.1f} | {', '.join(map(str, r['walls']))} | "
            f"{r['first_round_done_s']:.1f} | {r['tree_peak_mb']:,.0f} | {r['own_peak_mb']:,.0f} |"
        )
    for w in dict.fromkeys(r["workload"] for r in rows):
        kinds = [k for k in ("floor", "platform") if (w, k) in m]
        names = list(dict.fromkeys(n for k in kinds for n in m[(w, k)]["phases"]))
        lines += [
            "",
            f"Phases of {w} (median seconds; phases overlap where they run side by side):",
            "",
            "| phase | " + " | ".join(kinds) + " |",
            "|---|" + "---:|" * len(kinds),
        ]
        for n in names:
            lines.append(
                f"| {n} | "
                + " | ".join(f"{m[(w, k)]['phases'][n]:.2f}" if n in m[(w, k)]["phases"] else "-" for k in kinds)
                + " |"
            )
    return "\n".join(lines)


def plot(rows: Sequence[dict[str, Any]], out: Path) -> Path:
    """`out/whole.png`: per workload, the phases of the floor's and the platform's whole command on one time
    axis (the repeat whose platform command took the median time), so what overlaps and what waits shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    fig, axes = plt.subplots(len(workloads), 1, figsize=(9, 1.2 + 3.6 * len(workloads)), squeeze=False)
    for ax, w in zip(axes[:, 0], workloads):
        mine = sorted((r for r in rows if r["workload"] == w and r["kind"] == "platform"), key=lambda r: r["wall_s"])
        repeat = mine[(len(mine) - 1) // 2]["repeat"] if mine else 0
        spans = {k: latest_timeline(out / w / str(repeat) / k)["phases"] for k in ("floor", "platform")}
        names = list(dict.fromkeys(s["phase"] for s in sorted(spans["floor"] + spans["platform"], key=_start)))
        for k, (shift, colour) in {"floor": (-0.2, "0.55"), "platform": (0.2, "tab:blue")}.items():
            ends = [s["end"] for s in spans[k]]
            for s in spans[k]:
                y = names.index(s["phase"]) + shift
                ax.barh(y, max(s["end"] - s["start"], 0.02), left=s["start"], height=0.36, color=colour)
            ax.axvline(max(ends), color=colour, linestyle="--", linewidth=1, label=f"{k}: {max(ends):.1f} s")
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("seconds since the process started")
        ax.set_title(f"{w}: phases of the whole command (repeat {repeat + 1})", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = out / "whole.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _start(span: dict[str, Any]) -> float:
    return float(span["start"])


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
