"""benchmarks/vs_flower.py without Flower's virtualenv: it says how to install it and stops before any work."""

import importlib.util
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("vs_flower", ROOT / "benchmarks" / "vs_flower.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_flower_venv_exits_2_with_the_install_command(tmp_path, capsys, monkeypatch):
    script = load_script()

    def no_commands(*args, **kwargs):
        raise AssertionError(f"ran a command: {args}")

    monkeypatch.setattr(subprocess, "run", no_commands)
    out = tmp_path / "out"
    assert script.main(["--smoke-test", "--out", str(out), "--flower-python", str(tmp_path / "no-venv/bin/python")]) == 2
    err = capsys.readouterr().err
    assert script.INSTALL in err
    assert "python3 -m venv .venv-flower" in err and "pip install --no-deps -e ." in err
    assert not out.exists()  # nothing written, nothing run
