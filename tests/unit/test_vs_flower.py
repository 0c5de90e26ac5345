"""benchmarks/vs_flower.py's own logic, without Flower or Ray: a missing Flower virtualenv stops it before any
work with the install command, a failed command shows its log, the verdict needs both halves of the target."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

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
    out, missing = tmp_path / "out", tmp_path / "no-venv" / "bin" / "python"
    assert script.main(["--smoke-test", "--out", str(out), "--flower-python", str(missing)]) == 2
    err = capsys.readouterr().err
    assert script.INSTALL in err
    assert "python3 -m venv .venv-flower" in err and "pip install --no-deps -e ." in err
    assert not out.exists()  # nothing written, nothing run


def test_a_failed_command_reports_its_log_tail(tmp_path):
    script = load_script()
    log = tmp_path / "run.log"
    command = [sys.executable, "-c", "print('starting', flush=True); import sys; sys.exit('it broke')"]
    with pytest.raises(script.CommandFailed, match=r"(?s)exited 1 .*starting\nit broke"):
        script.timed("broken", command, log)


def test_the_verdict_needs_both_speed_and_the_same_accuracy():
    script = load_script()
    assert script.verdict(2.0, 0.004)[-1].endswith(": met")
    assert script.verdict(1.5, 0.0)[-1].endswith(": missed")
    assert script.verdict(2.0, 0.05)[-1].endswith(": missed")
