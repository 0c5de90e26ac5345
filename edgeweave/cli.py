"""The `edgeweave` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from edgeweave.platform.errors import UserError


def cmd_run(args: argparse.Namespace) -> int:
    """Validate everything first, then make the run directory, then start Ray and train."""
    from edgeweave.platform.config import load_config
    from edgeweave.platform.data import load_dataset
    from edgeweave.platform.devices.resources import build_resources
    from edgeweave.platform.partition import partition_data

    cfg = load_config(args.config, args.set)
    build_resources(cfg.devices.resources, cfg.seed)  # a bad trace file fails here, before any output
    data = load_dataset(cfg.data, cfg.seed)
    partition = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)

    from edgeweave.actors.session import Simulation
    from edgeweave.platform.experiment import run_rounds
    from edgeweave.platform.models import build_model
    from edgeweave.platform.rundir import create_run_dir, save_weights
    from edgeweave.platform.sinks import default_sinks

    run_dir = create_run_dir(cfg)
    print(f"edgeweave run {cfg.name}: {cfg.strategy.name} on {cfg.data.name}, "
          f"{cfg.devices.count} devices, {cfg.training.rounds} rounds -> {run_dir}", flush=True)
    with Simulation(cfg, data, partition) as sim:
        sinks = default_sinks(cfg, run_dir)
        run_rounds(cfg, sim, sinks, run_dir)
        model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed)
        save_weights(run_dir / "model.safetensors", model, sim.weights())
    return 0


def cmd_dse(args: argparse.Namespace) -> int:
    """Search the Pareto front of per-layer dropout vectors for a `distreal` config and store it."""
    from pathlib import Path

    from tqdm.auto import tqdm

    from edgeweave.platform.config import load_config
    from edgeweave.platform.data import load_dataset
    from edgeweave.platform.dse import Explorer, explore
    from edgeweave.platform.plots import plot_front

    cfg = load_config(args.config, args.set, check_strategy=False)
    if cfg.strategy.name != "distreal":
        raise UserError(f"strategy.name = {cfg.strategy.name!r}: `edgeweave dse` needs a distreal config")
    out = Path(args.out or cfg.strategy.front)
    data = load_dataset(cfg.data, cfg.seed)
    explorer = Explorer(cfg, data)
    p = cfg.strategy.params
    with tqdm(total=p.population * p.generations, desc="dse", unit="vector", file=sys.stderr) as bar:
        front, evaluated = explore(explorer, on_evaluation=bar.update)
    front.save(out, evaluated)
    plot_front(front, evaluated, out.with_suffix(".png"), f"{cfg.model.name} on {cfg.data.name}")
    print(f"{len(evaluated)} vectors evaluated, {len(front.score)} on the front -> {out} (+ .csv, .png)")
    print("| d (dropped per conv layer) | FLOPs per mini-batch | score |")
    print("|---|---:|---:|")
    for v, f, sc in zip(front.vectors, front.flops_per_batch, front.score):
        print(f"| {', '.join(f'{x:g}' for x in v)} | {f:.3g} | {sc:.4f} |")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Compare runs: accuracy against virtual time in one plot and a table (Markdown and JSON)."""
    import json
    from pathlib import Path

    from edgeweave.platform.report import plot, read_run, summarise, table

    if not 0 < args.target <= 1:
        raise UserError(f"--target = {args.target}: must be in (0, 1]")
    runs = [read_run(Path(d)) for d in args.runs]
    rows = [summarise(r, args.target) for r in runs]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(runs, out, args.target)
    md = table(rows, args.target)
    out.with_suffix(".md").write_text(md + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(md)
    print(f"\nplot -> {out}; table -> {out.with_suffix('.md')}, {out.with_suffix('.json')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeweave", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one experiment from a YAML config")
    run.add_argument("config", help="experiment YAML, e.g. configs/quickstart.yaml")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override one config value (repeatable)")
    run.set_defaults(func=cmd_run)
    dse = sub.add_parser("dse", help="find DISTREAL's Pareto front of dropout vectors for a config")
    dse.add_argument("config", help="a distreal experiment YAML, e.g. configs/distreal_digits.yaml")
    dse.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    dse.add_argument("--out", help="where to write the front (default: the config's strategy.front)")
    dse.set_defaults(func=cmd_dse)
    report = sub.add_parser("report", help="compare finished runs: accuracy against virtual time, a table")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR")
    report.add_argument("--target", type=float, default=0.85, help="accuracy for the time-to-target column")
    report.add_argument("--out", default="runs/report.png", help="plot path; .md and .json written beside it")
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
