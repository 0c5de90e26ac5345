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


def test_dse_command_writes_front_csv_and_plot(tmp_path, capsys):
    raw = tiny_raw(tmp_path, model={"width": 0.125})
    raw["strategy"] = {
        "name": "distreal",
        "front": str(tmp_path / "fronts" / "f.json"),
        "population": 4,
        "generations": 1,
        "dse_steps": 2,
        "dse_seeds": 1,
        "grid_step": 0.5,
        "grid_max": 0.5,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["dse", str(path)]) == 0
    for suffix in (".json", ".csv", ".png"):
        assert (tmp_path / "fronts" / f"f{suffix}").stat().st_size > 0
    assert "on the front" in capsys.readouterr().out
    # The config now runs against its front (the strategy's own checks pass).
    from edgeweave.platform.config.schema import load_config

    assert load_config(path).strategy.name == "distreal"


def test_dse_needs_a_distreal_config(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny_raw(tmp_path)))
    assert main(["dse", str(path)]) == 2
    assert "needs a distreal config" in capsys.readouterr().err


def test_the_start_line_names_a_server_rule_and_a_local_term_when_they_are_not_fedavgs(make_config):
    from edgeweave.platform.run.experiment import method_text

    assert method_text(make_config()) == "fedavg"
    assert (
        method_text(
            make_config(
                aggregation={"server": {"name": "plain", "lr": 0.5}},
                strategy={"name": "scaffold"},
                training={"prox_mu": 0.03},
            )
        )
        == "scaffold + server rule plain (lr 0.5) + FedProx mu 0.03"
    )
