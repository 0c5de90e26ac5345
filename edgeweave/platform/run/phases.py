"""A command's phases in wall seconds from its process's start: `timeline.json` and the phase line.

Every phase is a span [start, end] on one clock (seconds since the process started, read from
Linux's /proc, so the interpreter's own start-up and the imports count). Phases that repeat
inside the rounds (evaluations, checkpoints) are kept as a count and a sum. A phase that waits on
something outside the command (a worker slot, a node) says what, in the file and, once it has
waited `NOTICE` seconds, on the console.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

NOTICE = 5.0  # seconds a phase may wait before the console says what it waits for
TIMELINE = "timeline.json"


def process_age() -> float:
    """Seconds since this process started (Linux: /proc/self/stat and /proc/uptime; elsewhere 0)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


class Phases:
    """The phases of one command, in the order they started."""

    def __init__(self, from_process_start: bool = False) -> None:
        """Seconds count from the process's start (a command line), else from now (a call within a process)."""
        self.origin = time.monotonic() - (process_age() if from_process_start else 0.0)
        self.spans: list[dict[str, Any]] = []
        self.repeated: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds since the process started."""
        return time.monotonic() - self.origin

    def add(self, name: str, start: float, end: float, waits: Optional[str] = None) -> None:
        """A finished phase from `start` to `end` (seconds since the process started); `waits`: what it waited
        on, written with `waited` (true when it took NOTICE seconds or more: long enough to be said)."""
        span: dict[str, Any] = {
            "phase": name,
            "start": round(start, 3),
            "end": round(end, 3),
            "seconds": round(end - start, 3),
        }
        if waits:
            span["waits_for"] = waits
            span["waited"] = end - start >= NOTICE
        with self._lock:
            self.spans.append(span)

    @contextmanager
    def phase(self, name: str, waits: Optional[str] = None) -> Iterator[None]:
        """Time the block as `name`; `waits`: what it may wait for, said on the console past NOTICE seconds."""
        start = self.now()
        notice = None
        if waits:
            notice = threading.Timer(
                NOTICE,
                lambda: print(
                    f"edgeweave: {name}: waiting for {waits} ({NOTICE:g} s so far)", file=sys.stderr, flush=True
                ),
            )
            notice.daemon = True
            notice.start()
        try:
            yield
        finally:
            if notice is not None:
                notice.cancel()
            self.add(name, start, self.now(), waits)

    def repeat(self, name: str, seconds: float) -> None:
        """One more occurrence of a phase that recurs inside the rounds (an evaluation, a checkpoint)."""
        with self._lock:
            entry = self.repeated.setdefault(name, {"count": 0, "seconds": 0.0})
            entry["count"] += 1
            entry["seconds"] += seconds

    def idle(self) -> list[dict[str, float]]:
        """Gaps of more than a second between consecutive phases: time no phase accounts for."""
        ordered = sorted(self.spans, key=lambda s: s["start"])
        gaps, reached = [], 0.0
        for s in ordered:
            if s["start"] - reached > 1.0:
                gaps.append({"start": round(reached, 3), "end": s["start"], "seconds": round(s["start"] - reached, 3)})
            reached = max(reached, s["end"])
        return gaps

    def as_dict(self) -> dict[str, Any]:
        return {
            "whole_seconds": round(self.now(), 3),
            "phases": list(self.spans),
            "repeated": {
                k: {"count": int(v["count"]), "seconds": round(v["seconds"], 3)} for k, v in self.repeated.items()
            },
            "idle": self.idle(),
        }

    def save(self, run_dir: Path) -> dict[str, Any]:
        """Write `timeline.json` into the run directory; returns what was written."""
        timeline = self.as_dict()
        (run_dir / TIMELINE).write_text(json.dumps(timeline, indent=1) + "\n")
        return timeline

    def line(self) -> str:
        """The phases in one line, in the order they started, then the repeated ones."""
        timeline = self.as_dict()
        parts = [f"{s['phase']} {s['seconds']:.1f}" for s in timeline["phases"]]
        parts += [f"{name} {v['seconds']:.1f} ({v['count']}x)" for name, v in timeline["repeated"].items()]
        return f"phases (s): {', '.join(parts)}; whole command {timeline['whole_seconds']:.1f} s"
