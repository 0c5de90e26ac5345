import yaml

from edgeweave.cli import main
from tests.helpers import tiny_raw


def test_bad_override_exits_2_with_one_line_and_no_run_dir(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny_raw(tmp_path)))
    code = main(["run", str(path), "--set", "partition.policy=dirichlet", "--set", "partition.alpha=0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["error: partition.alpha = 0: Input should be greater than 0"]
    assert not (tmp_path / "runs").exists()


def test_missing_cifar_exits_2_and_says_where_it_looked(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    raw = tiny_raw(tmp_path)
    raw["data"] = {"name": "cifar10", "root": str(tmp_path / "nodata"), "download": False}
    path.write_text(yaml.safe_dump(raw))
    code = main(["run", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "data.root" in err[0] and "cifar-10-batches-py" in err[0] and "download=true" in err[0]
    assert not (tmp_path / "runs").exists()
