"""The parent process: plans the run, starts a worker per task, enforces the budgets.

The plan is a list of :class:`Task` (one system on one cell).  Cells a system
cannot run (Ftrl in optax, the legacy family in Keras 3, ...) are recorded as
N/A without reaching a worker.  The order is: the workloads with few leaves
(``large``, ``resnet``, ``gpt2``), then the trees of many leaves and the
scaling sweep's points by number of leaves (a sweep point with the leaf count
of a matrix workload *is* that workload's cell: ``many`` at 2000 leaves).

Each task runs in a fresh worker process (cold compile caches for its time to
the first step); cells whose first step came quickly are measured again in
another fresh process (``first_step_runs``) and keep the faster (on the
main matrix the rerun times the steps too, ``step_runs``, and the lower
median step is kept), and
``jax.jit(init)`` is timed in processes of its own (``jit_init_optimizers``;
``step_runs`` of them, the fastest kept).  Before each
task the budgets of :mod:`benchmarks.config` are consulted; a task they rule
out is recorded as ``skipped`` with the reason.  While it runs, each phase the
worker reports is held to its limit (the compile phase to the compile
budget); on overrun the worker is killed (by its pid) and the task recorded
as ``timeout``.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from benchmarks import measure, optimizers, systems, workloads
from benchmarks.config import REPO, SuiteConfig

READY_TIMEOUT_S = 300.0


@dataclasses.dataclass(frozen=True)
class Task:
    """One measurement: ``system`` on ``workload`` x ``optimizer`` x ``family``."""

    id: int
    kind: str  # "matrix" or "scaling"
    workload: str
    optimizer: str
    family: str
    system: str
    warmup: int
    repeats: int
    timed_budget_s: float
    jit_init: bool = False  # also time jax.jit(init), in a process of its own
    mode: str = "full"  # or "first_step" (a repeat of the time to the first step), "jit_init"

    @property
    def cell(self) -> tuple[str, str, str, str]:
        return (self.workload, self.optimizer, self.family, self.system)

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------
# The worker.
# --------------------------------------------------------------------------


class WorkerDied(RuntimeError):
    pass


class Worker:
    """A ``python -m benchmarks.worker`` subprocess and its event stream."""

    def __init__(self, log: TextIO):
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
        )
        self._events: queue.Queue[dict | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.next_event(READY_TIMEOUT_S)
        if ready is None or ready.get("event") != "ready":
            self.kill()
            raise WorkerDied(f"the worker did not start (got {ready!r}); see the worker log")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self._events.put(json.loads(line))
            except json.JSONDecodeError:
                continue
        self._events.put(None)  # end of stream: the worker exited

    def submit(self, task: Task) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(task.as_json()) + "\n")
        self._proc.stdin.flush()

    def next_event(self, timeout: float) -> dict | None:
        """The next event; ``None`` on timeout; raises :class:`WorkerDied` at end of stream."""
        try:
            event = self._events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if event is None:
            raise WorkerDied(f"the worker exited (code {self._proc.wait()})")
        return event

    def kill(self) -> None:
        """Ends this worker (by its own pid) and waits for it."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()

    def close(self) -> None:
        if self._proc.stdin is not None and self._proc.poll() is None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


# --------------------------------------------------------------------------
# The plan.
# --------------------------------------------------------------------------


def selected_systems(cfg: SuiteConfig) -> list[str]:
    """The registered systems the run covers, in registration order."""
    keys = list(systems.SYSTEMS)
    if cfg.systems is None:
        return keys
    unknown = [k for k in cfg.systems if k not in systems.SYSTEMS]
    if unknown:
        raise KeyError(f"unknown systems {unknown}: registered are {keys}")
    return [k for k in keys if k in cfg.systems]


def leaf_tree_optimizers(cfg: SuiteConfig, system: str) -> list[str]:
    """The optimizers ``system`` runs on the trees of many leaves (see ``leaf_tree_cells``)."""
    cells = cfg.leaf_tree_cells.get(system, ())
    return list(cfg.optimizers) if "*" in cells else [o for o in cfg.optimizers if o in cells]


def plan(cfg: SuiteConfig) -> list[Task]:
    """The run's tasks, in run order (see the module docstring)."""
    chosen = selected_systems(cfg)
    tasks: list[Task] = []
    seen: set[tuple[str, str, str, str]] = set()

    def add(kind: str, workload: str, optimizer: str, family: str, system: str, repeats: int) -> None:
        jit_init = (
            kind == "matrix"
            and workloads.is_leaf_tree(workload)
            and optimizer in cfg.jit_init_optimizers
            and systems.get(system).pure_init
        )
        task = Task(
            len(tasks), kind, workload, optimizer, family, system, cfg.warmup, repeats, cfg.timed_budget_s, jit_init
        )
        if task.cell not in seen:
            seen.add(task.cell)
            tasks.append(task)

    for w in cfg.workloads:
        if not workloads.is_leaf_tree(w):
            for opt in cfg.optimizers:
                for family in cfg.families:
                    for system in chosen:
                        add("matrix", w, opt, family, system, cfg.repeats)

    # The trees of many leaves, by size: per-leaf programs over thousands of
    # distinct shapes take minutes to compile, so each system runs the
    # optimizers of `leaf_tree_cells` (system by system, Adam first).
    leaf_trees = {workloads.get(w).n_leaves: w for w in cfg.workloads if workloads.is_leaf_tree(w)}
    for n in sorted(set(leaf_trees) | set(cfg.scaling_leaves)):
        if n in leaf_trees:
            for system in chosen:
                for opt in leaf_tree_optimizers(cfg, system):
                    for family in cfg.families:
                        add("matrix", leaf_trees[n], opt, family, system, cfg.repeats)
        if n in cfg.scaling_leaves:
            for system in chosen:
                if system in cfg.scaling_systems:
                    key = workloads.scaling_key(n)
                    add("scaling", key, cfg.scaling_optimizer, cfg.scaling_family, system, cfg.scaling_repeats)
    return tasks


# --------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------


def _on_leaf_tree(task: Task) -> bool:
    """Whether ``task`` is a matrix cell on a tree of many leaves (the longer budgets apply)."""
    return task.kind == "matrix" and workloads.is_leaf_tree(task.workload)


@dataclasses.dataclass
class _Group:
    """One system's compile spending on one workload."""

    spent_s: float = 0.0
    last_s: float = 0.0
    overran_by: str | None = None  # the cell that overran the compile budget


class Orchestrator:
    """Runs a plan within the budgets and collects one record per task.

    Args:
      cfg: the run's configuration.
      log_path: where the worker's stderr goes.
      on_record: called with each finished record (progress, saving).
    """

    def __init__(self, cfg: SuiteConfig, log_path: Path, on_record: Callable[[dict], None]):
        self.cfg = cfg
        self.log_path = log_path
        self.on_record = on_record
        self.records: list[dict] = []
        self._groups: dict[tuple[str, str], _Group] = {}
        self._programs: dict[tuple[str, str, str], dict] = {}
        self._log: TextIO | None = None
        self._start = 0.0

    # -- budgets -----------------------------------------------------------
    def _compile_budget(self, task: Task) -> float:
        """Seconds ``task``'s compile may take (longer on the matrix's trees of many leaves)."""
        return self.cfg.leaf_tree_compile_budget_s if _on_leaf_tree(task) else self.cfg.compile_budget_s

    def _group_budget(self, task: Task) -> float:
        """Compile seconds one system may spend on ``task``'s workload."""
        return self.cfg.leaf_tree_group_budget_s if _on_leaf_tree(task) else self.cfg.group_budget_s

    def _skip_reason(self, task: Task) -> str | None:
        cfg = self.cfg
        if time.monotonic() - self._start > cfg.deadline_s:
            return f"the run's deadline ({cfg.deadline_s / 60:.0f} min) had passed"
        group = self._groups.get((task.system, task.workload))
        if group is not None:
            if group.overran_by is not None:
                return f"{group.overran_by} on this workload overran the compile budget ({self._compile_budget(task):.0f} s)"
            if group.spent_s + group.last_s > self._group_budget(task):
                return (
                    f"compile budget for this workload spent ({group.spent_s:.0f} s; the next compile would pass "
                    f"{self._group_budget(task):.0f} s)"
                )
        if task.kind == "scaling":
            return self._sweep_reason(task)
        return None

    def _sweep_reason(self, task: Task) -> str | None:
        """Skips a sweep point that a smaller point shows will overrun the compile budget."""
        n = workloads.get(task.workload).n_leaves
        smaller = [
            r
            for r in self.records
            if (r["system"], r["optimizer"], r["family"]) == (task.system, task.optimizer, task.family)
            and r["n_leaves"] < n
            and r["workload"] == workloads.scaling_key(r["n_leaves"])
            and r["status"] in ("ok", "timeout")
        ]
        if not smaller:
            return None
        last = max(smaller, key=lambda r: r["n_leaves"])
        if last["status"] == "timeout":
            return f"{last['n_leaves']} leaves already overran the compile budget"
        if last["status"] == "ok":
            predicted, budget = last["compile_s"] * n / last["n_leaves"], self._compile_budget(task)
            if predicted > budget:
                return f"predicted {predicted:.0f} s (linear from {last['n_leaves']} leaves) > the compile budget ({budget:.0f} s)"
        return None

    # -- records -----------------------------------------------------------
    def _base_record(self, task: Task) -> dict[str, Any]:
        w = workloads.get(task.workload)
        slots = optimizers.get(task.optimizer).slots
        return {
            **task.as_json(),
            "n_leaves": w.n_leaves,
            "n_params": w.n_params,
            "params_bytes": w.nbytes,
            "expected_slots": slots,
            "expected_state_bytes": slots * w.n_params * w.slot_itemsize,
        }

    def _finish(self, task: Task, record: dict) -> None:
        self.records.append(record)
        spec = systems.get(task.system)
        if record["status"] in ("ok", "timeout"):
            group = self._groups.setdefault((task.system, task.workload), _Group())
            if record["status"] == "timeout" and record.get("phase") == "compile":
                group.overran_by = f"{task.optimizer}/{task.family}"
                group.spent_s += self._compile_budget(task)
            elif record.get("compile_s") is not None and record.get("reused_from") is None:
                group.spent_s += record["compile_s"]
                group.last_s = record["compile_s"]
            if spec.program_key is not None and record["status"] == "ok":
                key = (task.system, task.workload, spec.program_key(optimizers.get(task.optimizer), task.family))
                self._programs.setdefault(key, record)
        self.on_record(record)

    # -- the loop ----------------------------------------------------------
    def run(self, tasks: list[Task]) -> list[dict]:
        self._start = time.monotonic()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as log:
            self._log = log
            for task in tasks:
                started = time.monotonic()
                record = self._run_one(task)
                record["wall_s"] = round(time.monotonic() - started, 3)
                self._finish(task, record)
        return self.records

    def _run_one(self, task: Task) -> dict:
        base = self._base_record(task)
        spec = systems.get(task.system)
        opt = optimizers.get(task.optimizer)
        na = spec.not_applicable(opt, task.family)
        if na is not None:
            return {**base, "status": "n/a", "note": na}
        if spec.program_key is not None:
            same = self._programs.get((task.system, task.workload, spec.program_key(opt, task.family)))
            if same is not None:
                reused = {k: v for k, v in same.items() if k not in base}
                note = f"the same program as {same['optimizer']}/{same['family']}: measured once"
                return {**base, **reused, "reused_from": same["id"], "note": note}
        reason = self._skip_reason(task)
        if reason is not None:
            return {**base, "status": "skipped", "note": reason}
        record = {**base, **self._measure(task)}
        if record["status"] == "ok":
            self._measure_again(task, record)
            if task.jit_init:
                self._time_jit_init(task, record)
        return record

    def _measure_again(self, task: Task, record: dict) -> None:
        """Measures a cheap cell again in fresh processes; keeps its fastest first step and lowest median step.

        Up to ``first_step_runs`` processes in all, while the first took at
        most ``first_step_rerun_max_s`` to its first step; on the main matrix
        the first ``step_runs`` of them also time the steps.  Each group of
        fields (:data:`~benchmarks.measure.FIRST_STEP_FIELDS`,
        :data:`~benchmarks.measure.STEP_FIELDS`) comes whole from the run that
        was fastest on it; memory and the structural checks stay the first
        run's.
        """
        first_runs = [record["time_to_first_step_s"]]
        step_runs = [record["step_ms"]] if "step_ms" in record else []
        timing_steps = self.cfg.step_runs if task.kind == "matrix" and step_runs else 1
        for i in range(1, max(self.cfg.first_step_runs, timing_steps)):
            if first_runs[0] > self.cfg.first_step_rerun_max_s:
                break
            again = self._measure(dataclasses.replace(task, mode="full" if i < timing_steps else "first_step"))
            if again["status"] != "ok":
                break
            first_runs.append(again["time_to_first_step_s"])
            if again["time_to_first_step_s"] < record["time_to_first_step_s"]:
                record.update({k: again[k] for k in measure.FIRST_STEP_FIELDS if k in again})
            if "step_ms" in again:
                step_runs.append(again["step_ms"])
                if again["step_ms"] < record["step_ms"]:
                    record.update({k: again[k] for k in measure.STEP_FIELDS})
        record["first_step_runs_s"] = first_runs
        if step_runs:
            record["step_ms_runs"] = step_runs

    def _time_jit_init(self, task: Task, record: dict) -> None:
        """Times ``jax.jit(init)`` in ``step_runs`` fresh processes of its own (at
        least one); keeps the fastest, and every run's seconds in ``jit_init_runs_s``."""
        runs = []
        for _ in range(max(1, self.cfg.step_runs)):
            again = self._measure(dataclasses.replace(task, mode="jit_init"))
            if again["status"] != "ok" or again.get("jit_init_s") is None:
                record["jit_init_note"] = again.get("note")
                break
            runs.append(again["jit_init_s"])
        record["jit_init_s"] = min(runs) if runs else None
        if runs:
            record["jit_init_runs_s"] = runs

    def _log_name(self) -> str:
        try:
            return str(self.log_path.relative_to(REPO))
        except ValueError:
            return str(self.log_path)

    def _measure(self, task: Task) -> dict:
        """Runs ``task`` in a fresh worker; the record's measured fields (or why there are none)."""
        assert self._log is not None
        worker = None
        try:
            worker = Worker(self._log)
            worker.submit(task)
            return self._follow(worker, task)
        except WorkerDied as e:
            return {"status": "error", "note": f"{e}; see {self._log_name()}"}
        finally:
            if worker is not None:
                worker.close()

    def _follow(self, worker: Worker, task: Task) -> dict:
        """Reads ``task``'s events, holding each phase to its limit (killing the worker on overrun)."""
        phase, started = "setup", time.monotonic()
        limits = {
            "setup": self.cfg.phase_timeout_s,
            "compile": self._compile_budget(task),
            "run": self.cfg.phase_timeout_s,
        }
        while True:
            event = worker.next_event(limits[phase] - (time.monotonic() - started))
            if event is None:  # the phase overran its limit
                elapsed = time.monotonic() - started
                worker.kill()
                budget = limits[phase]
                record: dict[str, Any] = {"status": "timeout", "phase": phase, "budget_s": budget}
                if phase == "compile":
                    record["note"] = f"compile > {budget:.0f} s (killed at {elapsed:.0f} s)"
                else:
                    record["note"] = f"{phase} phase > {budget:.0f} s"
                return record
            if event.get("task") != task.id:
                continue
            kind = event["event"]
            if kind == "phase":
                phase, started = event["phase"], time.monotonic()
            elif kind == "result":
                return event["record"]
            elif kind == "error":
                return {"status": "error", "note": event["error"]}
