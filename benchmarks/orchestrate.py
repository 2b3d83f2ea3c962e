"""The parent process: plans the run, feeds the worker, enforces the budgets.

The plan is a list of :class:`Task` (one system on one cell).  Cells a system
cannot run (Ftrl in optax, the legacy family in Keras 3, ...) are recorded as
N/A without reaching the worker.  The order is: ``large``, ``resnet``, the
scaling sweep's points below 2000 leaves, ``many`` (Adam first), the sweep's
points above; the sweep's 2000-leaf point *is* the ``many`` cell.

Before each task the budgets of :mod:`benchmarks.config` are consulted; a
task they rule out is recorded as ``skipped`` with the reason.  While it runs,
each phase the worker reports is held to its limit (the compile phase to
``compile_budget_s``); on overrun the worker is killed (by its pid), the task
recorded as ``timeout``, and a fresh worker started for the next task.
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

from benchmarks import optimizers, systems, workloads
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


def plan(cfg: SuiteConfig) -> list[Task]:
    """The run's tasks, in run order (see the module docstring)."""
    chosen = selected_systems(cfg)
    tasks: list[Task] = []
    seen: set[tuple[str, str, str, str]] = set()

    def add(kind: str, workload: str, optimizer: str, family: str, system: str, repeats: int) -> None:
        task = Task(len(tasks), kind, workload, optimizer, family, system, cfg.warmup, repeats)
        if task.cell not in seen:
            seen.add(task.cell)
            tasks.append(task)

    def matrix(workload: str) -> None:
        for opt in cfg.optimizers:
            for family in cfg.families:
                for system in chosen:
                    add("matrix", workload, opt, family, system, cfg.repeats)

    def sweep(leaf_counts: list[int]) -> None:
        sweep_systems = [s for s in chosen if s in cfg.scaling_systems]
        for n in leaf_counts:
            for system in sweep_systems:
                add(
                    "scaling",
                    workloads.scaling_key(n),
                    cfg.scaling_optimizer,
                    cfg.scaling_family,
                    system,
                    cfg.scaling_repeats,
                )

    for w in cfg.workloads:
        if w != "many":
            matrix(w)
    sweep([n for n in cfg.scaling_leaves if n < workloads.MANY_LEAVES])
    if "many" in cfg.workloads:
        # Per-leaf programs over 2000 distinct shapes take minutes each to set
        # up and compile on XLA:CPU: the flat layout runs every cell, the
        # per-leaf systems the optimizers in `many_per_leaf_optimizers`.
        flat_first = [s for s in chosen if s == "flat"] + [
            s for s in chosen if s != "flat" and s in cfg.many_per_leaf_systems
        ]
        for system in flat_first:
            opts = cfg.optimizers if system == "flat" else [o for o in cfg.optimizers if o in cfg.many_per_leaf_optimizers]
            for opt in opts:
                for family in cfg.families:
                    add("matrix", "many", opt, family, system, cfg.repeats)
    sweep([n for n in cfg.scaling_leaves if n >= workloads.MANY_LEAVES])
    return tasks


# --------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------


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
        self._worker: Worker | None = None
        self._log: TextIO | None = None
        self._start = 0.0

    # -- budgets -----------------------------------------------------------
    def _compile_budget(self, task: Task) -> float:
        """Seconds ``task``'s compile may take (per-leaf programs on ``many`` get longer)."""
        if task.workload == "many" and task.system != "flat":
            return self.cfg.many_compile_budget_s
        return self.cfg.compile_budget_s

    def _skip_reason(self, task: Task) -> str | None:
        cfg = self.cfg
        if time.monotonic() - self._start > cfg.deadline_s:
            return f"the run's deadline ({cfg.deadline_s / 60:.0f} min) had passed"
        group = self._groups.get((task.system, task.workload))
        if group is not None:
            if group.overran_by is not None:
                return f"{group.overran_by} on this workload overran the compile budget ({self._compile_budget(task):.0f} s)"
            if group.spent_s + group.last_s > cfg.group_budget_s:
                return (
                    f"compile budget for this workload spent ({group.spent_s:.0f} s; the next compile would pass "
                    f"{cfg.group_budget_s:.0f} s)"
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
            predicted = last["compile_s"] * n / last["n_leaves"]
            if predicted > self.cfg.compile_budget_s:
                return (
                    f"predicted {predicted:.0f} s (linear from {last['n_leaves']} leaves) > the compile budget "
                    f"({self.cfg.compile_budget_s:.0f} s)"
                )
        return None

    # -- records -----------------------------------------------------------
    def _base_record(self, task: Task) -> dict[str, Any]:
        w = workloads.get(task.workload)
        return {
            **task.as_json(),
            "n_leaves": w.n_leaves,
            "n_params": w.n_params,
            "params_bytes": w.nbytes,
            "expected_slots": optimizers.get(task.optimizer).slots,
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
            try:
                for task in tasks:
                    started = time.monotonic()
                    record = self._run_one(task)
                    record["wall_s"] = round(time.monotonic() - started, 3)
                    self._finish(task, record)
            finally:
                if self._worker is not None:
                    self._worker.close()
                    self._worker = None
        return self.records

    def _run_one(self, task: Task) -> dict:
        base = self._base_record(task)
        spec = systems.get(task.system)
        opt = optimizers.get(task.optimizer)
        na = spec.applies(opt, task.family)
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
        try:
            return {**base, **self._measure(task)}
        except WorkerDied as e:
            self._drop_worker()
            return {**base, "status": "error", "note": f"{e}; see {self._log_name()}"}

    def _log_name(self) -> str:
        try:
            return str(self.log_path.relative_to(REPO))
        except ValueError:
            return str(self.log_path)

    def _drop_worker(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None

    def _measure(self, task: Task) -> dict:
        if self._worker is None:
            assert self._log is not None
            self._worker = Worker(self._log)
        worker = self._worker
        worker.submit(task)
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
                self._drop_worker()
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
