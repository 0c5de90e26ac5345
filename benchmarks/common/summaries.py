"""Seeded runs kept as small JSON summaries in the repository, so a table can grow across sittings.

A run's summary holds its config's fingerprint; a summary whose fingerprint matches the config a benchmark
would run is read, not run again, so more seeds or rows add to a table without redoing the rest.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from edgeweave.cli import main as edgeweave
from edgeweave.platform.config.schema import load_config
from edgeweave.platform.report.report import read_run
from edgeweave.platform.run.checkpoint import run_fingerprint


def run(*argv: str) -> None:
    """One `edgeweave` command, in this process and on its Ray; a failure stops the benchmark."""
    code = edgeweave(list(argv))
    if code:
        raise SystemExit(f"edgeweave {argv[0]} exited with {code}")


def summary(name: str, group: str, seed: int, config_hash: str, run_dir: Path, wall: float) -> dict[str, Any]:
    """What a run leaves in the repository: enough to redraw a table and a plot."""
    done = read_run(run_dir)
    metrics = done["metrics"]
    evaluated = [m for m in metrics if m.get("test_accuracy") is not None]
    curve = [
        {k: m.get(k) for k in ("round", "virtual_time", "test_accuracy", "test_loss", "cumulative_flops")}
        for m in evaluated
    ]
    accs = [m["test_accuracy"] for m in evaluated]
    quarter = max(1, len(accs) // 4)
    savings = [d["saving"] for d in done["devices"] if d.get("saving")]
    return {
        "run": name,
        "data": group,
        "seed": seed,
        "config_hash": config_hash,
        "rounds": len(metrics),
        "curve": curve,
        "final_accuracy": float(np.mean(accs[-3:])),
        "last_quarter_change": float(np.mean(accs[-3:]) - np.mean(accs[-quarter - 3 : -quarter] or accs[:1])),
        "virtual_time": metrics[-1]["virtual_time"],
        "total_flops": metrics[-1]["cumulative_flops"],
        "min_saving": min(savings, default=None),
        "mean_saving": float(np.mean(savings)) if savings else None,
        "wall_seconds": round(wall, 1),
    }


def one_run(
    group: str,
    base: str,
    name: str,
    seed: int,
    sets: Sequence[str],
    folder: Path,
    scratch: Path,
    run_missing: bool = True,
    extra: Optional[Callable[[Path], dict[str, Any]]] = None,
    extra_tag: str = "",
) -> Optional[dict[str, Any]]:
    """The run's summary: read when `folder` holds one for the same config and the same `extra_tag`, else run and
    written (None when there is none and `run_missing` is false). `extra` adds figures read from the finished
    run's directory; `extra_tag` names what it adds, so a summary without them is not taken for one with."""
    cfg = load_config(base, [*sets, f"seed={seed}"])
    config_hash = run_fingerprint(cfg)
    path = folder / name / f"seed{seed}.json"
    if path.is_file():
        kept = json.loads(path.read_text())
        if kept.get("config_hash") == config_hash and kept.get("extra", "") == extra_tag:
            return kept
    if not run_missing:
        return None
    where = scratch / group / name / f"seed{seed}"
    print(f"== {group}: {name}, seed {seed}", flush=True)
    t0 = time.perf_counter()
    run("run", base, *(a for s in [*sets, f"seed={seed}", f"logging.out_dir={where}"] for a in ("--set", s)))
    run_dir = max(where.iterdir())
    out = summary(name, group, seed, config_hash, run_dir, time.perf_counter() - t0)
    if extra is not None:
        out.update(extra(run_dir), extra=extra_tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out


def mean_spread(values: Sequence[Optional[float]], digits: int = 0) -> str:
    """'mean ± std (k/n)' over the values reached; '-' when none was."""
    got = [v for v in values if v is not None]
    if not got:
        return f"- (0/{len(values)})"
    reached = "" if len(got) == len(values) else f" ({len(got)}/{len(values)})"
    return f"{np.mean(got):.{digits}f} ± {np.std(got):.{digits}f}{reached}"
