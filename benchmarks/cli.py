"""``python -m benchmarks``: run the suite, save the results, write the page and plots."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from benchmarks import machine, optimizers, orchestrate, plots, report, systems, workloads
from benchmarks.config import FULL, QUICK, REPO, SuiteConfig

STEP_PNG = "performance_step_time.png"
COMPILE_PNG = "performance_compile_time.png"
PAGE = "performance.md"


def _csv(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=(
            "Benchmark one optimizer step of jaxopt_keras against optax, Keras 3, TF-Keras and its own Keras layer."
        ),
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"a few-minute run: Adam only, large and resnet, sweep to {QUICK.scaling_leaves[-1]} leaves",
    )
    p.add_argument("--workloads", type=_csv, help="comma-separated: large,resnet,gpt2,many,leaves-N (e.g. leaves-1000)")
    p.add_argument("--optimizers", type=_csv, help=f"comma-separated: {','.join(optimizers.OPTIMIZERS)}")
    p.add_argument("--families", type=_csv, help="comma-separated: current,legacy")
    p.add_argument("--systems", type=_csv, help=f"comma-separated, of the registered: {','.join(systems.SYSTEMS)}")
    p.add_argument(
        "--scaling-leaves", type=_csv, help="comma-separated leaf counts of the sweep (e.g. 100,500,1000,2000,5000)"
    )
    p.add_argument("--no-scaling", action="store_true", help="skip the scaling sweep")
    p.add_argument("--no-sparse", action="store_true", help="skip the sparse-embedding benchmark")
    p.add_argument("--repeats", type=int, help="timed steps per measurement")
    p.add_argument(
        "--first-step-runs", type=int, metavar="N", help="fresh processes per cell for its time to the first step"
    )
    p.add_argument(
        "--step-runs", type=int, metavar="N", help="of those, how many also time the steps (the lowest median is kept)"
    )
    p.add_argument("--compile-budget", type=float, metavar="S", help="seconds one compile may take")
    p.add_argument("--group-budget", type=float, metavar="S", help="compile seconds per system and workload")
    p.add_argument("--deadline", type=float, metavar="MIN", help="minutes after which no task starts")
    p.add_argument("--out-dir", type=Path, help="where the page and plots go (full: docs/; quick: build/bench-quick/)")
    p.add_argument("--results", type=Path, help="the results JSON (full: benchmarks/results.json)")
    p.add_argument("--report-only", action="store_true", help="rewrite the page and plots from the results JSON")
    return p.parse_args(argv)


def config_from(args: argparse.Namespace) -> SuiteConfig:
    cfg = QUICK if args.quick else FULL
    given = {k: v for k, v in vars(args).items() if v is not None}
    changes: dict = {k: given[k] for k in ("workloads", "optimizers", "families", "systems") if k in given}
    if "scaling_leaves" in given:
        changes["scaling_leaves"] = tuple(int(x) for x in given["scaling_leaves"])
    if args.no_scaling:
        changes["scaling_leaves"] = ()
    if "repeats" in given:
        changes["repeats"] = changes["scaling_repeats"] = args.repeats
    for flag, field in (("compile_budget", "compile_budget_s"), ("group_budget", "group_budget_s")):
        if flag in given:
            changes[field] = given[flag]
    for field in ("first_step_runs", "step_runs"):
        if field in given:
            changes[field] = given[field]
    if "deadline" in given:
        changes["deadline_s"] = 60.0 * args.deadline
    for flag, field in (("out_dir", "out_dir"), ("results", "results_path")):
        if flag in given:
            changes[field] = given[flag].resolve()
    cfg = cfg.replace(**changes)
    for w in cfg.workloads:
        workloads.get(w)
    for o in cfg.optimizers + (cfg.scaling_optimizer,):
        optimizers.get(o)
    orchestrate.selected_systems(cfg)
    return cfg


def config_json(cfg: SuiteConfig) -> dict:
    out = dataclasses.asdict(cfg)
    for key in ("out_dir", "results_path"):
        out[key] = _rel(Path(out[key]))
    return out


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def save_json(results: dict, path: Path) -> None:
    """Writes ``results`` atomically (a partial run leaves a readable file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, path)


def write_outputs(results: dict, out_dir: Path) -> list[Path]:
    """The page and both plots; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots.step_time(results, out_dir / STEP_PNG)
    plots.scaling(results, out_dir / COMPILE_PNG)
    report.write(results, out_dir / PAGE, {"step": STEP_PNG, "compile": COMPILE_PNG})
    return [out_dir / PAGE, out_dir / STEP_PNG, out_dir / COMPILE_PNG]


def run_sparse(quick: bool) -> dict | None:
    """The sparse-embedding benchmark, in a fresh process (see :mod:`benchmarks.sparse`)."""
    import subprocess

    cmd = [sys.executable, "-m", "benchmarks.sparse"] + (["--quick"] if quick else [])
    print("sparse embedding benchmark ...", flush=True)
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=900)
    if proc.returncode != 0:
        print(f"sparse benchmark failed (exit {proc.returncode})", flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def progress_line(record: dict, done: int, total: int, elapsed: float) -> str:
    cell = f"{record['workload']:<11} {record['optimizer']:<8} {record['family']:<8} {record['system']:<10}"
    status = record["status"]
    if status == "ok":
        extra = " (reused)" if record.get("reused_from") is not None else ""
        what = (
            f"step {record['step_ms']:9.3f} ms   compile {record['compile_s']:7.2f} s   "
            f"first step {record.get('time_to_first_step_s') or 0:7.2f} s{extra}"
        )
    else:
        what = f"{status}: {record.get('note', '')}"
    return f"[{done:3d}/{total} {elapsed / 60:5.1f} min] {cell} {what}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config_from(args)
    if args.report_only:
        results = json.loads(cfg.results_path.read_text())
        for p in write_outputs(results, cfg.out_dir):
            print(f"wrote {_rel(p)}")
        return 0

    tasks = orchestrate.plan(cfg)
    used_workloads = list(dict.fromkeys(t.workload for t in tasks))
    used_optimizers = list(dict.fromkeys(t.optimizer for t in tasks))
    results: dict = {
        "meta": machine.describe(),
        "config": config_json(cfg),
        "systems": [systems.get(k).summary() for k in orchestrate.selected_systems(cfg)],
        "optimizers": [optimizers.get(k).summary() | {"label": optimizers.get(k).label} for k in used_optimizers],
        "workloads": [workloads.get(k).summary() for k in used_workloads],
        "records": [],
    }
    log_path = REPO / "build" / f"bench-{cfg.mode}-worker.log"
    results["meta"]["worker_log"] = _rel(log_path)
    print(
        f"{cfg.mode} run: {len(tasks)} tasks, compile budget {cfg.compile_budget_s:.0f} s, "
        f"deadline {cfg.deadline_s / 60:.0f} min; worker log: {_rel(log_path)}",
        flush=True,
    )
    start = time.monotonic()

    def on_record(record: dict) -> None:
        results["records"].append(record)
        results["meta"]["duration_s"] = time.monotonic() - start
        save_json(results, cfg.results_path)
        print(progress_line(record, len(results["records"]), len(tasks), time.monotonic() - start), flush=True)

    orchestrate.Orchestrator(cfg, log_path, on_record).run(tasks)
    if not args.no_sparse:
        results["sparse"] = run_sparse(cfg.mode == "quick")
    results["meta"]["duration_s"] = time.monotonic() - start
    results["meta"]["load_average_end"] = machine.load_average()
    save_json(results, cfg.results_path)
    print(f"wrote {_rel(cfg.results_path)}")
    for p in write_outputs(results, cfg.out_dir):
        print(f"wrote {_rel(p)}")
    print(f"done in {(time.monotonic() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
