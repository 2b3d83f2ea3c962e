"""The benchmark's plan and its re-measurements, with the worker replaced by a script.

``Orchestrator._measure`` starts a fresh worker process per measurement; here
it is replaced by a list of prepared results, so what the orchestrator keeps
from several processes (the fastest first step, the lowest median step, the
first run's memory) and when it stops measuring again can be checked
without running anything.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from benchmarks import measure, orchestrate, workloads
from benchmarks.config import FULL, QUICK


def task(kind: str = "matrix", workload: str = "large", **changes) -> orchestrate.Task:
    t = orchestrate.Task(0, kind, workload, "adam", "current", "ours", warmup=2, repeats=10, timed_budget_s=5.0)
    return dataclasses.replace(t, **changes)


def run(first_step_s: float, step_ms: float | None) -> dict:
    """A worker's result: every first-step field from ``first_step_s``, every step field from ``step_ms``."""
    out: dict = {"status": "ok", "rss_peak": 1000 + first_step_s}
    out.update({k: first_step_s for k in measure.FIRST_STEP_FIELDS})
    if step_ms is not None:
        out.update({k: step_ms for k in measure.STEP_FIELDS})
    return out


class Scripted(orchestrate.Orchestrator):
    """An orchestrator whose workers return ``script``'s results in turn; it records the tasks asked for."""

    def __init__(self, cfg, script: list[dict], tmp_path):
        super().__init__(cfg, tmp_path / "worker.log", lambda record: None)
        self._start = time.monotonic()  # as run() sets it: the deadline counts from here
        self.script = list(script)
        self.asked: list[orchestrate.Task] = []

    def _measure(self, task: orchestrate.Task) -> dict:
        self.asked.append(task)
        return dict(self.script.pop(0))


def test_a_rerun_keeps_each_group_of_fields_from_the_run_fastest_on_it_and_the_first_runs_memory(tmp_path):
    cfg = FULL.replace(first_step_runs=2, step_runs=2)
    record = run(first_step_s=5.0, step_ms=10.0)
    orch = Scripted(cfg, [run(first_step_s=6.0, step_ms=8.0)], tmp_path)
    orch._measure_again(task(), record)

    assert [t.mode for t in orch.asked] == ["full"]
    assert all(record[k] == 8.0 for k in measure.STEP_FIELDS)  # the second run's lower median
    assert all(record[k] == 5.0 for k in measure.FIRST_STEP_FIELDS)  # the first run's faster first step
    assert record["rss_peak"] == 1005.0  # memory stays the first run's
    assert record["step_ms_runs"] == [10.0, 8.0]
    assert record["first_step_runs_s"] == [5.0, 6.0]


def test_more_first_step_runs_than_step_runs_repeat_only_the_first_step(tmp_path):
    cfg = FULL.replace(first_step_runs=3, step_runs=2)
    record = run(first_step_s=5.0, step_ms=10.0)
    script = [run(first_step_s=6.0, step_ms=12.0), run(first_step_s=4.0, step_ms=None)]
    orch = Scripted(cfg, script, tmp_path)
    orch._measure_again(task(), record)

    assert [t.mode for t in orch.asked] == ["full", "first_step"]
    assert all(record[k] == 4.0 for k in measure.FIRST_STEP_FIELDS)
    assert all(record[k] == 10.0 for k in measure.STEP_FIELDS)
    assert record["step_ms_runs"] == [10.0, 12.0]
    assert record["first_step_runs_s"] == [5.0, 6.0, 4.0]


def test_a_slow_first_step_is_not_measured_again(tmp_path):
    cfg = FULL.replace(first_step_runs=2, step_runs=2, first_step_rerun_max_s=20.0)
    record = run(first_step_s=20.5, step_ms=10.0)
    orch = Scripted(cfg, [], tmp_path)
    orch._measure_again(task(), record)
    assert orch.asked == []
    assert record["first_step_runs_s"] == [20.5] and record["step_ms_runs"] == [10.0]


def test_the_scaling_sweep_repeats_the_first_step_only(tmp_path):
    cfg = FULL.replace(first_step_runs=2, step_runs=2)
    record = run(first_step_s=5.0, step_ms=10.0)
    orch = Scripted(cfg, [run(first_step_s=4.0, step_ms=None)], tmp_path)
    orch._measure_again(task(kind="scaling", workload="leaves-100"), record)
    assert [t.mode for t in orch.asked] == ["first_step"]
    assert record["time_to_first_step_s"] == 4.0 and record["step_ms"] == 10.0


def test_a_failed_rerun_ends_the_reruns_and_keeps_the_first_run(tmp_path):
    cfg = FULL.replace(first_step_runs=3, step_runs=3)
    record = run(first_step_s=5.0, step_ms=10.0)
    script = [{"status": "error", "note": "worker died"}, run(first_step_s=1.0, step_ms=1.0)]
    orch = Scripted(cfg, script, tmp_path)
    orch._measure_again(task(), record)
    assert len(orch.asked) == 1
    assert record["step_ms"] == 10.0 and record["time_to_first_step_s"] == 5.0


def test_jit_init_keeps_the_fastest_of_its_processes_and_says_why_when_it_could_not(tmp_path):
    cfg = FULL.replace(step_runs=2)
    record: dict = {}
    orch = Scripted(cfg, [{"status": "ok", "jit_init_s": 3.0}, {"status": "ok", "jit_init_s": 2.5}], tmp_path)
    orch._time_jit_init(task(workload="leaves-1000", jit_init=True), record)
    assert [t.mode for t in orch.asked] == ["jit_init", "jit_init"]
    assert record["jit_init_s"] == 2.5 and record["jit_init_runs_s"] == [3.0, 2.5]

    record = {}
    orch = Scripted(cfg, [{"status": "timeout", "note": "compile > 240 s"}], tmp_path)
    orch._time_jit_init(task(workload="leaves-1000", jit_init=True), record)
    assert record["jit_init_s"] is None and record["jit_init_note"] == "compile > 240 s"
    assert "jit_init_runs_s" not in record


def test_a_sweep_point_predicted_to_overrun_the_compile_budget_is_skipped(tmp_path):
    cfg = FULL.replace(compile_budget_s=90.0)
    orch = Scripted(cfg, [], tmp_path)
    orch.records.append(
        {"system": "ours", "optimizer": "adam", "family": "current", "n_leaves": 500, "workload": "leaves-500",
         "status": "ok", "compile_s": 30.0}
    )  # fmt: skip
    # Linear from 500 leaves: 30 s x 1000 / 500 = 60 s (within 90 s); x 5000 / 500 = 300 s (not).
    assert orch._sweep_reason(task(kind="scaling", workload="leaves-1000")) is None
    reason = orch._sweep_reason(task(kind="scaling", workload="leaves-5000"))
    assert reason == "predicted 300 s (linear from 500 leaves) > the compile budget (90 s)"


def test_one_overrun_compile_skips_the_rest_of_that_system_on_that_workload(tmp_path):
    orch = Scripted(FULL, [], tmp_path)
    overran = task(workload="resnet")
    orch._finish(overran, {"status": "timeout", "phase": "compile", "system": "ours"})
    reason = orch._skip_reason(dataclasses.replace(overran, optimizer="sgd"))
    assert reason == f"adam/current on this workload overran the compile budget ({FULL.compile_budget_s:.0f} s)"
    assert orch._skip_reason(dataclasses.replace(overran, system="optax")) is None
    assert orch._skip_reason(dataclasses.replace(overran, workload="large")) is None


@pytest.mark.parametrize("cfg", [FULL, QUICK], ids=["full", "quick"])
def test_the_plan_measures_each_cell_once_few_leaves_first(cfg):
    tasks = orchestrate.plan(cfg)
    cells = [t.cell for t in tasks]
    assert len(cells) == len(set(cells))
    assert [t.id for t in tasks] == list(range(len(tasks)))

    leafy = [workloads.is_leaf_tree(t.workload) for t in tasks]
    assert leafy == sorted(leafy)  # every workload of few leaves before any tree of many
    n_leaves = [workloads.get(t.workload).n_leaves for t in tasks if workloads.is_leaf_tree(t.workload)]
    assert n_leaves == sorted(n_leaves)

    # Every (optimizer, family, system) of the main matrix on each workload of few leaves.
    few = [w for w in cfg.workloads if not workloads.is_leaf_tree(w)]
    chosen = orchestrate.selected_systems(cfg)
    assert {t.cell for t in tasks if t.workload in few} == {
        (w, o, f, s) for w in few for o in cfg.optimizers for f in cfg.families for s in chosen
    }
    for t in tasks:
        if workloads.is_leaf_tree(t.workload) and t.kind == "matrix":
            assert t.optimizer in orchestrate.leaf_tree_optimizers(cfg, t.system)


def test_jit_init_is_timed_for_adam_on_the_trees_of_many_leaves_by_the_functional_systems():
    # The systems whose state comes from a pure init(params): ours, the flat layout, optax
    # (Keras 3, TF-Keras and the Keras layer build theirs inside objects).
    timed = {(t.workload, t.optimizer, t.family, t.system) for t in orchestrate.plan(FULL) if t.jit_init}
    assert timed == {
        (w, "adam", f, s) for w in ("leaves-1000", "many") for f in ("current", "legacy") for s in ("ours", "flat", "optax")
    }


def test_the_sweep_point_of_the_many_tree_is_its_matrix_cell():
    tasks = orchestrate.plan(FULL)
    many = [t for t in tasks if t.cell == ("many", FULL.scaling_optimizer, FULL.scaling_family, "ours")]
    assert len(many) == 1 and many[0].kind == "matrix"
    swept = {t.workload for t in tasks if t.kind == "scaling" and t.system == "ours"}
    assert swept == {workloads.scaling_key(n) for n in FULL.scaling_leaves} - {"many", "leaves-1000"}
