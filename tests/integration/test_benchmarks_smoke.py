"""Every benchmark script runs its --smoke-test to the end and writes its result (a path no test
drives is a path that does not work)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# script -> (where its --out goes, the result file it must write), relative to the test's tmp_path
SCRIPTS = {
    "async_vs_sync.py": ("async", "async/async_vs_sync.md"),
    "cluster.py": ("cluster", "cluster/cluster.md"),
    "distreal_paper.py": ("paper", "paper/distreal_paper.md"),
    "distreal_vs_baselines.py": ("compare", "compare/report.md"),
    "equivalence.py": ("equivalence.json", "equivalence.json"),
    "fidelity.py": ("fidelity", "fidelity/fidelity_heterofl.png"),
    "invariants.py": ("invariants.json", "invariants.json"),
    "population.py": ("population.json", "population.json"),
    "shapes_capacity.py": ("shapes.json", "shapes.json"),
    "slicing.py": ("slicing.json", "slicing.json"),
    "soak.py": ("soak.json", "soak.json"),
    "speech_loader.py": ("speech_loader.json", "speech_loader.json"),
    "sweep_overhead.py": ("overhead", "overhead/sweep_overhead.md"),
    "taskwise_saving.py": ("taskwise", "taskwise/table.md"),
    "vs_flower.py": ("vs-flower", "vs-flower/vs_flower.md"),
}
# Flower lives in its own virtualenv, made by the install line in benchmarks/vs_flower.py.
FLOWER = ROOT / ".venv-flower" / "bin" / "python"


def test_every_benchmark_script_is_covered():
    assert sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")) == sorted(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_benchmark_smoke_test(script, tmp_path):
    if script == "vs_flower.py" and not FLOWER.is_file():
        pytest.skip("Flower's virtualenv .venv-flower is not installed (benchmarks/vs_flower.py says how)")
    out, result = SCRIPTS[script]
    proc = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--smoke-test", "--out", str(tmp_path / out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert (tmp_path / result).is_file() and (tmp_path / result).stat().st_size > 0
