"""Trace: per-device time series read from a CSV or JSON file.

CSV: a header `device,time,available,speed`, then one row per change, in any order. JSON:
`{"series": [{"device": 0, "time": [...], "available": [...], "speed": [...]}, ...]}`.
A series holds its values from each time until the next (before its first time: its first
values). Device d of the simulation follows the series of the d mod n-th device in the file;
with `cycle` set, time wraps around every `cycle` seconds. The file is read once, with the config
(`FileParams`): every process replays the same bytes, and a checkpoint's fingerprint covers them.
"""

from __future__ import annotations

import csv
import io
import json
from typing import ClassVar, Optional

import numpy as np
from pydantic import Field

from edgeweave.platform.devices.resources.base import RESOURCES, ResourceModel, next_boundary
from edgeweave.platform.errors import UserError
from edgeweave.platform.inputs import FileParams


class TraceParams(FileParams):
    input_fields: ClassVar[tuple[str, ...]] = ("path",)  # read once with the config, sent with it
    path: str
    cycle: Optional[float] = Field(None, gt=0)


def _bad(path: str, where: str, what: str) -> UserError:
    return UserError(f"devices.resources.path = {path!r}: {where}: {what}")


def _text(path: str, content: bytes) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _bad(path, "not a trace", f"not UTF-8 text ({e.reason} at byte {e.start})") from None


def _rows_from_csv(path: str, content: bytes) -> list[tuple[int, float, bool, float]]:
    rows = []
    with io.StringIO(_text(path, content), newline="") as f:
        reader = csv.DictReader(f)
        need = {"device", "time", "available", "speed"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise _bad(path, "line 1", f"the header must name {', '.join(sorted(need))}")
        for line, row in enumerate(reader, start=2):
            try:
                avail = row["available"].strip().lower()
                if avail not in ("0", "1", "true", "false"):
                    raise ValueError(f"available = {row['available']!r} is not 0/1/true/false")
                rows.append((int(row["device"]), float(row["time"]), avail in ("1", "true"), float(row["speed"])))
            except (TypeError, ValueError, AttributeError) as e:
                raise _bad(path, f"line {line}", str(e)) from None
    return rows


def _rows_from_json(path: str, content: bytes) -> list[tuple[int, float, bool, float]]:
    try:
        doc = json.loads(_text(path, content))
        rows = []
        for i, s in enumerate(doc["series"]):
            if not len(s["time"]) == len(s["available"]) == len(s["speed"]):
                raise ValueError(f"series {i}: time, available and speed differ in length")
            rows += [(int(s["device"]), float(t), bool(a), float(v))
                     for t, a, v in zip(s["time"], s["available"], s["speed"])]
        return rows
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise _bad(path, "not a trace", f"{type(e).__name__}: {e}") from None


@RESOURCES.register("trace", TraceParams)
class Trace(ResourceModel):
    """Replays recorded availability and speed; cheap lookups by binary search per device."""

    def __init__(self, params: TraceParams, seed: int) -> None:
        super().__init__(params, seed)
        path, content = params.path, params.content("path")
        if content is None:
            raise UserError(f"devices.resources.path = {path!r}: no such file")
        rows = _rows_from_json(path, content) if path.endswith(".json") else _rows_from_csv(path, content)
        if not rows:
            raise _bad(path, "empty", "the trace has no rows")
        if any(r[3] <= 0 for r in rows):
            raise _bad(path, "speed", "every speed multiplier must be > 0")
        rows.sort()
        dev = np.array([r[0] for r in rows])
        self.series_ids, starts = np.unique(dev, return_index=True)
        self.offsets = np.append(starts, len(rows))
        self.time = np.array([r[1] for r in rows])
        self.available = np.array([r[2] for r in rows])
        self.speed = np.array([r[3] for r in rows])

    def state(self, ids: np.ndarray, round_: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        if self.params.cycle:
            t = t % self.params.cycle
        series = np.asarray(ids) % len(self.series_ids)
        pos = np.empty(len(series), np.int64)
        for i, s in enumerate(series):
            a, b = self.offsets[s], self.offsets[s + 1]
            pos[i] = a + max(int(np.searchsorted(self.time[a:b], t, side="right")) - 1, 0)
        return self.available[pos], self.speed[pos]

    def next_change(self, ids: np.ndarray, round_: int, t: float) -> np.ndarray:
        cycle = self.params.cycle
        base, tt = (t - t % cycle, t % cycle) if cycle else (0.0, t)
        series = np.asarray(ids) % len(self.series_ids)
        out = np.empty(len(series))
        for i, s in enumerate(series):
            times = self.time[self.offsets[s]:self.offsets[s + 1]]
            k = int(np.searchsorted(times, tt, side="right"))
            nxt = times[k] if k < len(times) else (cycle if cycle else np.inf)  # a cycle wraps to its start
            out[i] = base + nxt
        return np.where(out > t, out, next_boundary(t, cycle) if cycle else np.inf)
