"""The `edgeweave` command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from edgeweave.platform.core.errors import RunFailed, UserError

if TYPE_CHECKING:
    from pathlib import Path

    from edgeweave.actors.session import Prestarted
    from edgeweave.platform.config.schema import ExperimentConfig
    from edgeweave.platform.data import ArrayData
    from edgeweave.platform.partition import Partition
    from edgeweave.platform.run.checkpoint import RunState
    from edgeweave.platform.run.phases import Phases


def rounds_text(cfg) -> str:
    """How long the run is: its rounds, or its async server steps and how they are made."""
    a = cfg.aggregation
    if a.mode == "sync":
        return f"{cfg.training.rounds} rounds"
    buffer, concurrency = a.sizes(cfg.devices)
    return f"{cfg.training.rounds} async server steps of {buffer} updates, {concurrency} devices training at once"


class InThread:
    """`fn()` run in a thread and timed as a phase; `join` returns its result or raises what it raised."""

    def __init__(self, fn: Callable[[], Any], phases: "Phases", name: str) -> None:
        import threading

        self.result: Any = None
        self.error: Optional[BaseException] = None

        def run() -> None:
            try:
                with phases.phase(name):
                    self.result = fn()
            except BaseException as e:  # noqa: BLE001 - raised again by join()
                self.error = e

        self.thread = threading.Thread(target=run, name=f"edgeweave-{name}", daemon=True)
        self.thread.start()

    @property
    def failed(self) -> bool:
        """Whether `fn` has already raised."""
        return self.error is not None

    def join(self) -> Any:
        """The result, handed over (this object keeps no reference to it)."""
        self.thread.join()
        if self.error is not None:
            raise self.error
        result, self.result = self.result, None
        return result


def cmd_run(args: argparse.Namespace) -> int:
    """Validate everything first, then make (or reopen) the run directory, then train.

    Ray and the first workers' processes start as soon as the config is read, while a thread loads
    the data; every phase is timed into the run's `timeline.json`.
    """
    from pathlib import Path

    phases: Phases = args.phases
    with phases.phase("config and plugins"):
        from edgeweave.platform.config.schema import load_config

        if (args.config is None) == (args.resume is None):
            raise UserError("edgeweave run: give a CONFIG to start a run, or --resume RUN_DIR to continue one")
        resume = None
        if args.resume:
            run_dir = Path(args.resume)
            if not (run_dir / "config.yaml").is_file():
                raise UserError(f"--resume = {args.resume!r}: no config.yaml there; expected a run directory")
            if args.set:
                raise UserError(
                    f"--set = {args.set[0]!r}: a resumed run keeps its config; start a new run to change it"
                )
            if args.plugin:
                raise UserError(f"--plugin = {args.plugin[0]!r}: a resumed run keeps its config's plugins")
            from edgeweave.platform.run.checkpoint import load_checkpoint, run_fingerprint
            from edgeweave.platform.run.experiment import CHECKPOINT

            cfg = load_config(run_dir / "config.yaml", [])
            resume = load_checkpoint(run_dir / CHECKPOINT, run_fingerprint(cfg))
        else:
            cfg = load_config(args.config, args.set, plugins=args.plugin)
    loading = InThread(lambda: _load(cfg), phases, "data load")  # while Ray and the workers' processes start
    prestarted = _start(cfg, phases, loading)
    try:
        data, partition = loading.join()
        with phases.phase("run directory"):
            from edgeweave.platform.run.experiment import method_text
            from edgeweave.platform.run.rundir import create_run_dir

            if resume is None:
                run_dir = create_run_dir(cfg)
                print(
                    f"edgeweave run {cfg.name}: {method_text(cfg)} on {cfg.data.name}, "
                    f"{cfg.devices.count} devices, {rounds_text(cfg)} -> {run_dir}",
                    flush=True,
                )
            else:
                unit = "step" if cfg.aggregation.mode == "async" else "round"
                print(
                    f"edgeweave run {cfg.name}: resuming at {unit} {resume.next_round} of {cfg.training.rounds} "
                    f"-> {run_dir}",
                    flush=True,
                )
    except BaseException:
        prestarted.close()
        raise
    try:
        with phases.phase("data put"):
            import ray

            data_ref = ray.put(data)
        shape = data.input_shape, data.num_classes
        del data  # the object store holds it now: this process keeps no second copy
    except BaseException:
        prestarted.close()
        raise
    try:
        _train(cfg, data_ref, shape, partition, prestarted, run_dir, resume, phases)
    finally:  # a run that failed keeps its timeline too
        phases.save(run_dir)
    print(phases.line(), flush=True)
    return 0


def _load(cfg: "ExperimentConfig") -> tuple["ArrayData", "Partition"]:
    """The run's data and partition, checked against the config (a bad trace file fails here too)."""
    from edgeweave.platform.data import load_dataset
    from edgeweave.platform.devices.resources import build_resources
    from edgeweave.platform.partition import partition_data
    from edgeweave.platform.run.server import check_with_data

    build_resources(cfg.devices.resources, cfg.seed)
    data = load_dataset(cfg.data, cfg.seed)
    partition = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed, data.owners)
    check_with_data(cfg, data)
    return data, partition


def _start(cfg: "ExperimentConfig", phases: "Phases", loading: InThread) -> "Prestarted":
    """Import Ray, start it or attach, start the driver and the first workers' processes (`Prestarted`).

    A data load that failed by then (a missing file, a bad value) is raised without starting Ray; a
    failure here undoes what was started and is the error raised (the load's thread is let finish).
    """
    with phases.phase("imports (ray)"):
        import ray

        from edgeweave.actors.connect import connect, ray_address
    if loading.failed:
        loading.join()
    address, started = ray_address(cfg), False
    try:
        with phases.phase("ray attach" if address else "ray start", waits=f"the Ray at {address}" if address else None):
            started = connect(cfg)
        with phases.phase("imports (workers)"):
            from edgeweave.actors.session import prestart
        return prestart(cfg, started)
    except BaseException:
        if started:
            ray.shutdown()
        loading.thread.join()
        raise


def _train(
    cfg: "ExperimentConfig",
    data_ref: Any,
    shape: tuple[tuple[int, int, int], int],
    partition: "Partition",
    prestarted: "Prestarted",
    run_dir: "Path",
    resume: Optional["RunState"],
    phases: "Phases",
) -> None:
    """The simulation on the data in the object store (taking over the prestarted processes), its rounds, the
    final weights (`shape`: the data's input shape and classes); Ray stops while the figures are drawn. W&B's
    start (a service process) overlaps the workers' start."""
    from edgeweave.actors.session import Simulation
    from edgeweave.platform.models import build_model
    from edgeweave.platform.run.experiment import run_rounds
    from edgeweave.platform.run.rundir import save_weights
    from edgeweave.platform.run.sinks import default_sinks

    opening = InThread(lambda: default_sinks(cfg, run_dir, start=resume.next_round if resume else 0), phases, "sinks")
    try:
        sim = Simulation(cfg, None, partition, data_ref=data_ref, prestarted=prestarted, phases=phases)
    except BaseException as e:
        try:
            opening.join().close({"failed": str(e)})
        except Exception:  # noqa: BLE001 - the simulation's error is the one to report
            pass
        raise
    closing: Optional[InThread] = None

    def after_rounds() -> None:
        nonlocal closing
        with phases.phase("final weights"):
            model = build_model(cfg.model, *shape, cfg.seed)
            save_weights(run_dir / "model.safetensors", model, sim.weights())
        closing = InThread(sim.close, phases, "shutdown")

    try:
        run_rounds(cfg, sim, opening.join(), run_dir, resume=resume, phases=phases, after_rounds=after_rounds)
    finally:
        if closing is None:
            sim.close()
        else:
            closing.join()


def cmd_dse(args: argparse.Namespace) -> int:
    """Search the Pareto front of per-layer dropout vectors for a `distreal` config and store it."""
    from pathlib import Path

    import numpy as np
    from tqdm.auto import tqdm

    from edgeweave.platform.config.schema import load_config
    from edgeweave.platform.data import load_dataset
    from edgeweave.platform.search.dse import Explorer, evaluations, explore, store
    from edgeweave.platform.search.plots import plot_front

    cfg = load_config(args.config, args.set, check_strategy=False, plugins=args.plugin)
    if cfg.strategy.name != "distreal":
        raise UserError(f"strategy.name = {cfg.strategy.name!r}: `edgeweave dse` needs a distreal config")
    out = Path(args.out or cfg.strategy.front)
    if out.exists() and not args.force:
        field = "--out" if args.out else "strategy.front"
        raise UserError(
            f"{field} = {str(out)!r}: a front is already there; name another file with --out, "
            "or give --force to replace it"
        )
    data = load_dataset(cfg.data, cfg.seed)
    explorer = Explorer(cfg, data)
    p = cfg.strategy.params
    with tqdm(total=evaluations(p), desc="dse", unit="vector", file=sys.stderr) as bar:
        front, evaluated = explore(explorer, on_evaluation=bar.update)
    title = f"{cfg.model.name} on {cfg.data.name}"
    store(front, evaluated, out, lambda png: plot_front(front, evaluated, png, title))
    print(f"{len(evaluated)} vectors evaluated, {len(front.score)} on the front -> {out} (+ .csv, .png)")
    print("| d (dropped per conv layer) | FLOPs per mini-batch | score |")
    print("|---|---:|---:|")
    for v, f, sc in zip(front.vectors, front.flops_per_batch, front.score):
        print(f"| {', '.join(f'{x:g}' for x in v)} | {f:.3g} | {sc:.4f} |")
    spread = [np.std(e["seed_scores"]) for e in evaluated if len(e["seed_scores"]) > 1]
    if spread:
        none = next(e["seed_scores"] for e in evaluated if not any(e["vector"]))
        print(
            f"score of no dropout over {len(none)} seeds: {np.mean(none):.4f} ± {np.std(none):.4f} "
            f"(min {min(none):.4f}, max {max(none):.4f}); median spread (std) over the {len(spread)} vectors: "
            f"{np.median(spread):.4f}"
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Compare runs: accuracy against virtual time in one plot and a table (Markdown and JSON)."""
    import json
    from pathlib import Path

    from edgeweave.platform.report.report import plot, read_run, summarise, table
    from edgeweave.platform.report.savings import savings_table

    if not 0 < args.target <= 1:
        raise UserError(f"--target = {args.target}: must be in (0, 1]")
    bad = [w for w in args.widths or [] if not 0 < w <= 1]
    if bad:
        raise UserError(f"--widths = {bad[0]:g}: a width is a rate in (0, 1]")
    runs = [read_run(Path(d)) for d in args.runs]
    reference = None
    if args.reference:
        ref = summarise(read_run(Path(args.reference)), args.target)
        reference = ref["final_accuracy"]
    rows = [summarise(r, args.target, reference) for r in runs]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(runs, out, args.target)
    md = table(rows, args.target)
    if reference is not None:
        md += f"\n\nreference: {args.reference}, final accuracy {reference:.4f}"
    for r in runs:  # per-device savings, for runs whose devices trained sub-models
        if any(abs(d["saving"] - 1) > 1e-9 for d in r["devices"]):
            md += f"\n\n### {r['dir'].name}: per-device saving\n\n" + savings_table(r["devices"])
    if args.widths:
        from edgeweave.platform.report.widths import run_width_scores

        md += "\n\n### Final model at each nested width\n\n| run | " + " | ".join(f"{w:g}" for w in args.widths)
        md += " |\n|---|" + "---:|" * len(args.widths)
        for r in runs:
            scores = run_width_scores(r["dir"], args.widths)
            md += f"\n| {r['dir'].name} | " + " | ".join(f"{scores[float(w)][0]:.4f}" for w in args.widths) + " |"
        other = sorted({r["strategy"].split(",")[0] for r in runs} - {"heterofl", "fjord", "small"})
        if other:
            md += (
                f"\n\n{', '.join(other)}: the left-most slices of these models were never trained as models "
                "of their own (only heterofl, fjord and small train nested widths)"
            )
    out.with_suffix(".md").write_text(md + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(md)
    print(f"\nplot -> {out}; table -> {out.with_suffix('.md')}, {out.with_suffix('.json')}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run a Ray Tune sweep from a sweep file, or continue an interrupted one."""
    from pathlib import Path

    from edgeweave.platform.config.sweep import grid_size, load_sweep

    if (args.sweep is None) == (args.resume is None):
        raise UserError("edgeweave sweep: give a SWEEP file to start a sweep, or --resume SWEEP_DIR to continue one")
    from edgeweave.tune.runner import resume_sweep, run_sweep

    if args.resume:
        if args.plugin:
            raise UserError(f"--plugin = {args.plugin[0]!r}: a resumed sweep keeps its base's plugins")
        return 0 if resume_sweep(Path(args.resume)) else 1
    sweep, base = load_sweep(args.sweep, args.plugin)
    print(
        f"edgeweave sweep {sweep.name}: {grid_size(sweep)} trials over {', '.join(sweep.space)} "
        f"({sweep.scheduler.name}, {sweep.metric} {sweep.mode})",
        flush=True,
    )
    return 0 if run_sweep(sweep, base) else 1


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise UserError(f"{what} = {text!r}: expected positive whole numbers separated by commas, e.g. 1,2")
    return values


def cmd_bench(args: argparse.Namespace) -> int:
    """Time the platform's fedavg against plain PyTorch processes on the same work; write JSON and Markdown."""
    import json
    import time
    from pathlib import Path

    from edgeweave.platform.bench.rounds import device_sequence, run_floor, summary, table, targets, workload
    from edgeweave.platform.bench.whole import WORKLOADS as WHOLE_WORKLOADS
    from edgeweave.platform.data import load_dataset
    from edgeweave.platform.partition import partition_data

    workers = _int_list(args.workers, "--workers")
    populations = _int_list(args.populations, "--populations")
    if args.repeat < 1:
        raise UserError(f"--repeat = {args.repeat}: must be at least 1")
    if args.rounds < 2:
        raise UserError(f"--rounds = {args.rounds}: must be at least 2 (a first round and a steady one)")
    for flag, value in (
        ("--samples", args.samples),
        ("--test-samples", args.test_samples),
        ("--per-round", args.per_round),
    ):
        if value < 1:
            raise UserError(f"{flag} = {value}: must be at least 1")
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if args.whole and (not names or any(w not in WHOLE_WORKLOADS for w in names)):
        raise UserError(f"--workloads = {args.workloads!r}: choose from {', '.join(WHOLE_WORKLOADS)}")
    out = Path(args.out or f"runs/bench-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        out.mkdir(parents=True, exist_ok=False)
    except OSError as e:
        raise UserError(f"--out = {str(out)!r}: cannot create it ({e.strerror})") from None
    if args.whole:
        from edgeweave.platform.bench.whole import cpu_count, run_whole
        from edgeweave.platform.bench.whole import plot as whole_plot
        from edgeweave.platform.bench.whole import table as whole_table
        from edgeweave.platform.bench.whole import targets as whole_targets

        whole_workers = min(max(workers), cpu_count())
        print(
            f"whole commands, process start to exit: {', '.join(names)}; floor and platform alternating, "
            f"{args.repeat} repeat(s), {whole_workers} worker(s)",
            flush=True,
        )
        rows = run_whole(
            names, args.repeat, out.resolve(), whole_workers, progress=lambda line: print(line, flush=True)
        )
        md = whole_table(rows) + "\n\n" + "\n".join(f"- {line}" for line in whole_targets(rows))
        (out / "whole.md").write_text(md + "\n")
        png = whole_plot(rows, out)
        print(md)
        print(f"\nbench -> {out / 'whole.md'}, {out / 'whole.json'}, {png}")
        return 0
    if args.batching:
        from edgeweave.platform.bench.rounds import batching_table, run_batching

        print(
            f"devices trained one by one and as training.batched=auto decides: {args.rounds} rounds of "
            f"{args.per_round} devices, one worker, one thread",
            flush=True,
        )
        batching = run_batching(args.rounds, args.per_round)
        (out / "batching.json").write_text(json.dumps(batching, indent=1))
        md = batching_table(batching)
        (out / "batching.md").write_text(md + "\n")
        print(md)
        print(f"\nbench -> {out / 'batching.md'}, {out / 'batching.json'}")
        return 0
    from edgeweave.actors.bench import run_platform

    rows = []
    plan = [(w, populations[0], True) for w in workers] + [(max(workers), p, False) for p in populations[1:]]
    plan = plan * args.repeat  # floor and platform alternate, so a slower spell of the machine hits both
    for i, (w, population, with_floor) in enumerate(plan, 1):
        cfg = workload(population, args.rounds, args.eval_every, samples=args.samples, test_samples=args.test_samples)
        data = load_dataset(cfg.data, cfg.seed)
        partition = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed, data.owners)
        if with_floor:
            print(
                f"[{i}/{len(plan)}] floor: {w} plain PyTorch process(es), {population:,} devices, {args.rounds} rounds",
                flush=True,
            )
            sequence = device_sequence(cfg, data, partition)
            rows.append(
                summary("floor", w, population, cfg, run_floor(cfg, data, partition, sequence, w), len(data.y_train))
            )
        print(f"[{i}/{len(plan)}] platform: {w} worker(s), {population:,} devices, {args.rounds} rounds", flush=True)
        rows.append(summary("platform", w, population, cfg, run_platform(cfg, data, partition, w), len(data.y_train)))
        (out / "bench.json").write_text(json.dumps(rows, indent=1))  # kept as it grows
    summary_line = f"Medians of {args.repeat} repeats:\n\n" if args.repeat > 1 else ""
    md = table(rows) + "\n\n" + summary_line + "\n".join(f"- {line}" for line in targets(rows))
    (out / "bench.md").write_text(md + "\n")
    print(md)
    print(f"\nbench -> {out / 'bench.md'}, {out / 'bench.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeweave", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one experiment from a YAML config")
    run.add_argument("config", nargs="?", help="experiment YAML, e.g. configs/quickstart.yaml")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    run.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one config value (repeatable)"
    )
    run.set_defaults(func=cmd_run)
    dse = sub.add_parser("dse", help="find DISTREAL's Pareto front of dropout vectors for a config")
    dse.add_argument("config", help="a distreal experiment YAML, e.g. configs/distreal_digits.yaml")
    dse.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    dse.add_argument("--out", help="where to write the front (default: the config's strategy.front)")
    dse.add_argument("--force", action="store_true", help="replace a front that is already there")
    dse.set_defaults(func=cmd_dse)
    sweep = sub.add_parser("sweep", help="sweep policies with Ray Tune: a table, the best config, plots")
    sweep.add_argument("sweep", nargs="?", help="sweep YAML, e.g. configs/sweeps/partition_x_strategy.yaml")
    sweep.add_argument("--resume", metavar="SWEEP_DIR", help="continue an interrupted sweep")
    sweep.set_defaults(func=cmd_sweep)
    for command in (run, dse, sweep):
        command.add_argument(
            "--plugin",
            action="append",
            default=[],
            metavar="PATH",
            help="a .py file (relative to the working directory) or importable module of your own parts, "
            "imported before the config is read (repeatable)",
        )
    bench = sub.add_parser("bench", help="time the platform against plain PyTorch processes on the same work")
    bench.add_argument("--workers", default="2", help="worker counts to compare, e.g. 1,2 (default 2)")
    bench.add_argument(
        "--populations",
        default="1000",
        help="device counts, e.g. 1000,10000,100000; the first is compared with the floor, the rest "
        "run the platform only (default 1000)",
    )
    bench.add_argument(
        "--samples",
        type=int,
        default=50_000,
        help="distinct training samples (default 50000, CIFAR-10's); each device holds 50 of its own "
        "while the population fits, a larger one draws from them",
    )
    bench.add_argument("--test-samples", type=int, default=2_000, help="evaluation images (default 2000)")
    bench.add_argument("--rounds", type=int, default=30)
    bench.add_argument("--eval-every", type=int, default=10)
    bench.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run floor and platform this many times, alternating; targets on the medians",
    )
    bench.add_argument(
        "--batching",
        action="store_true",
        help="instead: one worker's device-updates/s with devices trained one by one and batched "
        "(training.batched), for a small and a CIFAR-sized model",
    )
    bench.add_argument(
        "--whole",
        action="store_true",
        help="instead: the whole command (process start to exit) of `edgeweave run` and of the floor on "
        "--workloads, alternating --repeat times; phases side by side, peak memory",
    )
    bench.add_argument(
        "--workloads",
        default="cifar-plugin,quickstart",
        help="with --whole: cifar-plugin (CIFAR-10's size, a plugin data set) and/or quickstart",
    )
    bench.add_argument(
        "--per-round",
        type=int,
        default=16,
        help="with --batching: devices of each round, all trained by the one worker (default 16)",
    )
    bench.add_argument("--out", help="directory for bench.json and bench.md (default runs/bench-<time>)")
    bench.set_defaults(func=cmd_bench)
    report = sub.add_parser("report", help="compare finished runs: accuracy against virtual time, a table")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR")
    report.add_argument("--target", type=float, default=0.85, help="accuracy for the time-to-target column")
    report.add_argument(
        "--reference",
        metavar="RUN_DIR",
        help="a run to judge the others' accuracy against, e.g. the same config under central",
    )
    report.add_argument("--out", default="runs/report.png", help="plot path; .md and .json written beside it")
    report.add_argument(
        "--widths",
        type=float,
        nargs="+",
        metavar="RATE",
        help="also score each run's final model at these nested widths (statistics recomputed there)",
    )
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from edgeweave.platform.run.phases import Phases

    phases = Phases(from_process_start=argv is None)  # a command line counts from the interpreter's start
    phases.add("python start", 0.0, phases.now())
    args = build_parser().parse_args(argv)
    args.phases = phases
    try:
        return args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def entry() -> None:
    """The console script: `main`, then exit at once. Everything is written and closed by then (threads
    that are not daemons are waited for and the exit handlers run first, as at a normal exit); the
    interpreter's own teardown of torch and Ray would hold the prompt for a second more."""
    import atexit
    import os
    import threading

    code = main()
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # what a normal exit runs (no public name does it)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
