"""Does Speech Commands v2 load on a small machine? Peak memory and time of edgeweave's loader on a
full-size generated copy of the data set.

Builds once (a complete tree from an earlier run is reused) the data set's own layout with
generated spoken-word-like clips (`platform/data/speech_synth.py`): its 35 word folders, 84,843
training clips and validation and testing lists in the real proportions (9,981 and 11,005 clips),
16-bit 16 kHz WAV, and a `_background_noise_` folder. Then loads it through `load_dataset` twice,
each time in a fresh subprocess: first with the loader's feature cache removed (every clip read,
features computed and cached), then from the cache. Reports each load's peak resident memory
(target: under 4 GB) and time, prints a Markdown table, writes the figures as JSON to --out and
the table beside it (.md). A --root holding a real copy of the data set is measured as it is
(its feature cache is removed first).

    python benchmarks/speech_loader.py [--train-clips 84843] [--root DIR] [--out FILE] [--smoke-test]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgeweave.platform.data.speech_synth import LEGACY_MARKER, MARKER, generate

TRAIN, VALIDATION, TEST = 84843, 9981, 11005  # Speech Commands v0.02: 105,829 clips


def sizes(train: int) -> dict[str, int]:
    """Clips per split for `train` training clips, the lists in the real set's proportions."""
    return {"train": train, "validation": round(train * VALIDATION / TRAIN), "test": round(train * TEST / TRAIN)}


def rss_bytes() -> int:
    """This process's resident memory now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def child(root: Path) -> None:
    """One load in this (fresh) process; prints its figures as one JSON line."""
    import resource

    from edgeweave.platform.config.schema import build_config
    from edgeweave.platform.data import load_dataset
    from edgeweave.platform.data import speech_commands as sc

    reads = [0]
    read_wav = sc.read_wav

    def counted(path):
        reads[0] += 1
        return read_wav(path)

    sc.read_wav = counted
    cfg = build_config({"data": {"name": "speech_commands", "root": str(root)}})
    before = rss_bytes()
    t0 = time.perf_counter()
    d = load_dataset(cfg.data, 0)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    digest = "".join(hashlib.sha256(memoryview(x)).hexdigest()[:16] for x in (d.x_train, d.x_test))  # no copy
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_bytes": peak,
                "rss_before_load_bytes": before,
                "clips_read": reads[0],
                "x_train": list(d.x_train.shape),
                "x_test": list(d.x_test.shape),
                "features_bytes": d.x_train.nbytes + d.x_test.nbytes,
                "digest": digest,
            }
        )
    )


def load_once(root: Path) -> dict:
    """Run `child` in a fresh interpreter; its progress bar goes to our stderr."""
    proc = subprocess.run([sys.executable, __file__, "--child", str(root)], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the load exited with {proc.returncode}:\n{proc.stdout[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(root: Path, train: int, generate_tree: bool, target_gb: float) -> dict:
    from edgeweave.platform.data.speech_commands import CACHE_DIR

    counts = sizes(train)
    t0 = time.perf_counter()
    generated_s = time.perf_counter() - t0 if generate_tree and generate(root, counts) else 0.0
    if generated_s:
        print(f"generated {sum(counts.values())} clips under {root} in {generated_s:.1f} s", flush=True)
    shutil.rmtree(root / CACHE_DIR, ignore_errors=True)
    first = load_once(root)
    second = load_once(root)
    cache = sum(p.stat().st_size for p in (root / CACHE_DIR).glob("*.npz"))
    loads = [
        {"load": "first: clips read, features computed and cached", **first},
        {"load": "second: from the cache", **second},
    ]
    peak = max(x["peak_rss_bytes"] for x in loads)
    return {
        "root": str(root),
        "generated": generate_tree,
        "clips": counts if generate_tree else None,
        "clips_loaded": first["x_train"][0] + first["x_test"][0],
        "generate_seconds": round(generated_s, 1),
        "loads": loads,
        "cache_bytes": cache,
        "target_gb": target_gb,
        "peak_rss_gb": round(peak / 2**30, 3),
        "target_met": peak < target_gb * 2**30,
        "cache_used": second["clips_read"] == 0,
        "same_features": first["digest"] == second["digest"],
    }


def table(r: dict) -> str:
    gb = lambda b: f"{b / 2**30:.2f} GB"  # noqa: E731
    head = (
        f"Speech Commands v2 layout, {r['clips_loaded']} clips loaded ({r['loads'][0]['x_train'][0]} train, "
        f"{r['loads'][0]['x_test'][0]} test; features {gb(r['loads'][0]['features_bytes'])}, "
        f"cache {gb(r['cache_bytes'])}); target: peak RSS under {r['target_gb']:g} GB\n\n"
    )
    rows = "\n".join(
        f"| {x['load']} | {x['clips_read']} | {x['seconds']:.1f} s | {gb(x['rss_before_load_bytes'])} | "
        f"{gb(x['peak_rss_bytes'])} |"
        for x in r["loads"]
    )
    return (
        head
        + "| load | clips read | time | RSS before the load | peak RSS |\n|---|---:|---:|---:|---:|\n"
        + rows
        + "\n"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-clips", type=int, default=TRAIN, help="training clips to generate (lists in proportion)")
    p.add_argument(
        "--root",
        type=Path,
        help="tree to generate or reuse (default data/speech-commands-synthetic-N); "
        "a real copy of the data set is measured as it is",
    )
    p.add_argument("--target-gb", type=float, default=4.0)
    p.add_argument("--out", type=Path, default=Path("runs/bench-speech-loader.json"))
    p.add_argument("--smoke-test", action="store_true", help="300 training clips in a temporary folder")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child)
    train = 300 if args.smoke_test else args.train_clips
    with tempfile.TemporaryDirectory(prefix="speech-bench-") as tmp:
        root = args.root or (Path(tmp) / "sc" if args.smoke_test else Path(f"data/speech-commands-synthetic-{train}"))
        real = (root / "testing_list.txt").is_file() and not any((root / m).is_file() for m in (MARKER, LEGACY_MARKER))
        result = measure(root, train, not real, args.target_gb)
    text = table(result)
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    args.out.with_suffix(".md").write_text(text)
    if not (result["cache_used"] and result["same_features"]):
        raise SystemExit("speech_loader: the second load did not come from the cache, or its features differ")
    if not result["target_met"]:
        raise SystemExit(f"speech_loader: peak RSS {result['peak_rss_gb']} GB is over the {args.target_gb:g} GB target")


if __name__ == "__main__":
    main()
