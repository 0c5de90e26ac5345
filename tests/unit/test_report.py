import json

import yaml

from edgeweave.cli import main
from edgeweave.platform.report.report import read_run, summarise, table


def fake_run(root, name, strategy, accs, step=10.0):
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"name": name, "strategy": {"name": strategy}}))
    lines = [
        {"round": r, "test_accuracy": a, "virtual_time": step * (r + 1), "cumulative_flops": 1e9 * (r + 1)}
        for r, a in enumerate(accs)
    ]
    (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    return d


def test_time_to_target_final_and_flops(tmp_path):
    run = read_run(fake_run(tmp_path, "a", "fedavg", [0.2, 0.6, 0.9, 0.88], step=5.0))
    s = summarise(run, target=0.85)
    assert s["time_to_target"] == 15.0 and s["final_accuracy"] == 0.88 and s["best_accuracy"] == 0.9
    assert s["total_flops"] == 4e9 and s["virtual_time"] == 20.0
    assert summarise(run, target=0.95)["time_to_target"] is None


def test_table_orders_by_time_to_target(tmp_path):
    rows = [
        summarise(read_run(fake_run(tmp_path, n, "x", accs)), 0.5)
        for n, accs in (("slow", [0.1, 0.2, 0.6]), ("never", [0.1, 0.2]), ("fast", [0.7]))
    ]
    names = [line.split("|")[1].strip() for line in table(rows, 0.5).splitlines()[2:]]
    assert names == ["fast", "slow", "never"]


def test_report_command_writes_plot_and_tables(tmp_path, capsys):
    a = fake_run(tmp_path, "a", "fedavg", [0.5, 0.9])
    b = fake_run(tmp_path, "b", "distreal", [0.7, 0.95])
    out = tmp_path / "rep" / "cmp.png"
    assert main(["report", str(a), str(b), "--target", "0.8", "--out", str(out)]) == 0
    assert out.stat().st_size > 0 and out.with_suffix(".md").is_file()
    rows = json.loads(out.with_suffix(".json").read_text())
    assert [r["strategy"] for r in rows] == ["fedavg", "distreal"]
    assert "| b | distreal |" in capsys.readouterr().out


def test_report_on_a_non_run_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no metrics.jsonl there" in capsys.readouterr().err
    assert main(["report", str(fake_run(tmp_path, "a", "x", [0.5])), "--target", "2"]) == 2


def devices_log(run_dir, records):
    (run_dir / "devices.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_device_savings_sum_over_rounds(tmp_path):
    from edgeweave.platform.report.savings import device_savings

    d = fake_run(tmp_path, "tw", "taskwise", [0.5, 0.9])
    # device 3 trains a 4x-cheaper sub-model, then a 6x-cheaper one on as many FLOPs: 5x over the run
    devices_log(
        d,
        [
            {"device": 3, "flops": 100.0, "saving": 4.0},
            {"device": 3, "flops": 100.0, "saving": 6.0},
            {"device": 1, "flops": 50.0, "saving": 2.0},
            {"device": 2, "flops": 0.0, "saving": None},
        ],
    )
    rows = device_savings(d / "devices.jsonl")
    assert [r["device"] for r in rows] == [1, 3]  # device 2 trained nothing
    assert rows[1]["rounds"] == 2 and rows[1]["full_flops"] == 1000.0 and rows[1]["saving"] == 5.0


def test_report_against_a_reference_shows_gap_and_per_device_saving(tmp_path):
    central = fake_run(tmp_path, "central", "central", [0.9, 0.98])
    tw = fake_run(tmp_path, "tw", "taskwise", [0.9, 0.97])
    devices_log(tw, [{"device": 0, "flops": 10.0, "saving": 5.0}, {"device": 1, "flops": 10.0, "saving": 7.0}])
    out = tmp_path / "rep.png"
    assert main(["report", str(tw), "--reference", str(central), "--out", str(out)]) == 0
    row = json.loads(out.with_suffix(".json").read_text())[0]
    assert abs(row["vs_reference"] + 0.01) < 1e-12 and row["min_saving"] == 5.0 and row["mean_saving"] == 6.0
    md = out.with_suffix(".md").read_text()
    assert "tw: per-device saving" in md and "| 1 | 1 | 10 | 70 | 7.00x |" in md
