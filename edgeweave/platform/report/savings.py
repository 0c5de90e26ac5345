"""Per-device compute saving of a run: the FLOPs each device trained against the full model's.

Every record in `devices.jsonl` holds the FLOPs a device trained that round and `saving`, the
full model's training FLOPs per sample over those of the sub-model it trained; summed over the
rounds this gives each device's saving for the whole run, the figure task-wise decoupling is
judged by (a device that trains different sub-models in different rounds is judged on the sum).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence


def device_savings(devices_file: Path) -> list[dict[str, Any]]:
    """One row per device that trained: rounds, FLOPs trained, the full model's FLOPs, saving."""
    totals: dict[int, list[float]] = {}
    for line in devices_file.read_text().splitlines():
        r = json.loads(line) if line.strip() else {}
        if not r.get("flops") or not r.get("saving"):
            continue
        t = totals.setdefault(int(r["device"]), [0, 0.0, 0.0])
        t[0] += 1
        t[1] += r["flops"]
        t[2] += r["flops"] * r["saving"]
    return [
        {"device": d, "rounds": int(n), "flops": f, "full_flops": full, "saving": full / f}
        for d, (n, f, full) in sorted(totals.items())
    ]


def savings_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of `device_savings` rows."""
    lines = ["| device | rounds | FLOPs trained | full model's FLOPs | saving |", "|---:|---:|---:|---:|---:|"]
    lines += [
        f"| {r['device']} | {r['rounds']} | {r['flops']:.3g} | {r['full_flops']:.3g} | {r['saving']:.2f}x |"
        for r in rows
    ]
    return "\n".join(lines)
