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

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.inputs import FileParams
from edgeweave.platform.devices.resources.base import RESOURCES, ResourceModel, slot_of, slot_start


class TraceParams(FileParams):
    input_fields: ClassVar[tuple[str, ...]] = ("path",)  # read once with the config, sent with it
    path: str  # CSV, or JSON by its .json suffix; relative: to the config's folder, else the working directory
    cycle: Optional[float] = Field(None, gt=0)  # repeat the trace every cycle seconds; null: once, its last rows hold


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
            rows += [
                (int(s["device"]), float(t), bool(a), float(v))
                for t, a, v in zip(s["time"], s["available"], s["speed"])
            ]
        return rows
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise _bad(path, "not a trace", f"{type(e).__name__}: {e}") from None


@RESOURCES.register("trace", TraceParams)
class Trace(ResourceModel):
    """Replays recorded availability and speed; cheap lookups by binary search per device."""

    params: TraceParams

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
        outside = [r[1] for r in rows if params.cycle and not 0 <= r[1] < params.cycle]
        if outside:
            raise _bad(
                path,
                "time",
                f"{outside[0]:g} is outside the cycle: with devices.resources.cycle = "
                f"{params.cycle:g}, every time must be in [0, {params.cycle:g})",
            )
        rows.sort()
        dev = np.array([r[0] for r in rows])
        self.series_ids, starts = np.unique(dev, return_index=True)
        self.offsets = np.append(starts, len(rows))
        self.time = np.array([r[1] for r in rows])
        self.available = np.array([r[2] for r in rows])
        self.speed = np.array([r[3] for r in rows])
        self.series_of_row = np.repeat(np.arange(len(starts)), np.diff(self.offsets))

    def peak(self) -> float:
        return float(self.speed.max())

    def _points(self, times: np.ndarray, t: float) -> tuple[np.ndarray, float]:
        """(the absolute times at which rows of `times` begin, around t; when the next cycle begins).

        With a cycle, the rows of cycle c begin at slot_start(c) + their time, capped at the next
        cycle's start: `state` and `next_change` read the same change points, so the state at a
        change is always the next row's (reading `t % cycle` against `t - t % cycle` rounds apart).
        """
        cycle = self.params.cycle
        if not cycle:
            return times, np.inf
        c = slot_of(t, cycle)
        end = slot_start(c + 1, cycle)
        return np.minimum(slot_start(c, cycle) + times, end), end

    def _row(self, s: int, t: float) -> tuple[int, float]:
        """(the row series s holds at t, the next time it may change) for absolute time t."""
        points, end = self._points(self.time[self.offsets[s] : self.offsets[s + 1]], t)
        k = int(np.searchsorted(points, t, side="right"))  # rows begun by t; the next begins after it
        return self.offsets[s] + max(k - 1, 0), float(points[k]) if k < len(points) else end

    def _rows(self, ids: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """`_row` for each device, computed once per series the devices follow."""
        series, back = np.unique(np.asarray(ids) % len(self.series_ids), return_inverse=True)
        rows = [self._row(int(s), t) for s in series]
        pos = np.array([r for r, _ in rows], np.int64).reshape(-1)
        nxt = np.array([n for _, n in rows], np.float64).reshape(-1)
        return pos[back], nxt[back]

    def earliest_change(self, ids: np.ndarray, round_: int, t: float) -> float:
        """The min of `next_change` over `ids`, from every row at once: the same change points as `_row`."""
        if not len(ids):
            return np.inf
        followed = np.zeros(len(self.series_ids), bool)
        followed[np.asarray(ids) % len(self.series_ids)] = True
        points, end = self._points(self.time, t)
        later = points[followed[self.series_of_row] & (points > t)]
        return float(min(later.min(initial=np.inf), end))

    def state(self, ids: np.ndarray, round_: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        pos, _ = self._rows(ids, t)
        return self.available[pos], self.speed[pos]

    def next_change(self, ids: np.ndarray, round_: int, t: float) -> np.ndarray:
        return self._rows(ids, t)[1]
