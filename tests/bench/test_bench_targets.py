"""The benchmark's performance targets, judged from records built by hand.

``benchmarks.targets`` turns a run's records into the verdicts that
``docs/performance.md`` prints.  Here each verdict is checked against
figures chosen so the expected ratio, worst cell, median and exponent follow
from arithmetic in the test, including at a limit's edge and when a cell
was not measured or overran its compile budget.
"""

from __future__ import annotations

import math

import pytest

from benchmarks import targets

SYSTEMS = [
    {"key": "ours", "label": "jaxopt_keras", "role": "ours"},
    {"key": "flat", "label": "jaxopt_keras.flat", "role": "ours"},
    {"key": "optax", "label": "optax", "role": "peer"},
    {"key": "tf_legacy", "label": "TF-Keras legacy", "role": "peer"},
    {"key": "layer", "label": "jaxopt_keras layer", "role": "layer"},
]
CONFIG = {
    "workloads": ["large", "resnet", "leaves-1000", "many"],
    "scaling_systems": ["ours"],
    "scaling_leaves": [100, 500, 1000, 2000],
    "scaling_optimizer": "adam",
    "scaling_family": "current",
}
PARAMS_BYTES = 1000


def cell(workload: str, optimizer: str, family: str, system: str, status: str = "ok", **fields) -> dict:
    """A record as the orchestrator writes it: a well-behaved two-slot cell unless ``fields`` say otherwise."""
    n_leaves = int(workload.split("-")[1]) if workload.startswith("leaves-") else 1
    return {
        "workload": workload,
        "optimizer": optimizer,
        "family": family,
        "system": system,
        "kind": "matrix",
        "status": status,
        "n_leaves": n_leaves,
        "expected_slots": 2,
        "params_bytes": PARAMS_BYTES,
        "state_array_bytes": 2 * PARAMS_BYTES,
        "donated_fraction": 1.0,
        "steady_rss_start": 0,
        "steady_rss_peak": 0,
        "device_to_host": {"transfers": False, "error": None},
        **fields,
    }


def verdict(records: list[dict], target: str, system: str = "jaxopt_keras") -> targets.Verdict:
    """The one verdict named ``target`` for ``system`` (by label)."""
    found = [
        v
        for v in targets.evaluate({"records": records, "systems": SYSTEMS, "config": CONFIG})
        if v.target == target and v.system == system
    ]
    assert len(found) == 1, [v.target for v in found]
    return found[0]


STEP_LARGE = "Pure functional step vs optax on large"


def test_a_ratio_target_reports_the_worst_cell_and_the_median_and_its_limit_is_inclusive():
    records = [
        cell("large", "adam", "current", "ours", step_ms=10.0),
        cell("large", "adam", "current", "optax", step_ms=10.0),
        cell("large", "sgd", "current", "ours", step_ms=9.0),
        cell("large", "sgd", "current", "optax", step_ms=10.0),
    ]
    v = verdict(records, STEP_LARGE)
    assert v.status == targets.MET  # 10 / 10 = 1.0 is within "<= 1.0"
    assert v.measured == "worst 1.000 (large/adam/current), median 0.950 over 2 cells"
    assert v.criterion == "step time / optax's <= 1.0"

    records[0]["step_ms"] = 10.5
    v = verdict(records, STEP_LARGE)
    assert v.status == targets.NOT_MET
    assert v.measured == "worst 1.050 (large/adam/current), median 0.975 over 2 cells"


def test_a_target_with_no_measured_cell_is_not_measured_and_a_partly_measured_one_says_how_much():
    # Our cell failed: the peer ran, so the cell was planned but not measured.
    records = [
        cell("large", "adam", "current", "ours", status="error", note="boom"),
        cell("large", "adam", "current", "optax", step_ms=10.0),
    ]
    v = verdict(records, STEP_LARGE)
    assert (v.status, v.measured) == (targets.NOT_MEASURED, "no cell measured (1 planned)")

    # The peer cannot run it (N/A): nothing was planned.
    records[1] = cell("large", "adam", "current", "optax", status="n/a")
    records[0] = cell("large", "adam", "current", "ours", step_ms=10.0)
    assert verdict(records, STEP_LARGE).measured == "no cell measured (0 planned)"

    # One of two cells measured: judged on that one, and the gap said.
    records = [
        cell("large", "adam", "current", "ours", step_ms=9.0),
        cell("large", "adam", "current", "optax", step_ms=10.0),
        cell("large", "sgd", "current", "ours", status="error"),
        cell("large", "sgd", "current", "optax", step_ms=10.0),
    ]
    v = verdict(records, STEP_LARGE)
    assert v.status == targets.MET
    assert v.measured.endswith("over 1 cells; 1 of 2 cells not measured")


def test_a_compile_that_overran_its_budget_fails_every_ratio_target_of_its_cell():
    records = [
        cell("resnet", "adam", "current", "ours", status="timeout", phase="compile", budget_s=90.0),
        cell("resnet", "adam", "current", "optax", step_ms=10.0, backend_compile_s=2.0),
        cell("resnet", "sgd", "current", "ours", step_ms=5.0, backend_compile_s=1.0),
        cell("resnet", "sgd", "current", "optax", step_ms=10.0, backend_compile_s=2.0),
    ]
    for target in ("XLA compile time vs optax on resnet", "Pure functional step vs optax on resnet"):
        v = verdict(records, target)
        assert v.status == targets.NOT_MET, target
        assert v.measured == "resnet/adam/current: compile > 90 s (the compile budget)"


def test_faster_than_tf_keras_is_tf_keras_time_over_ours_in_the_legacy_family():
    target = "Faster than TF-Keras legacy apply_gradients (large, resnet)"
    records = [
        cell("large", "adam", "legacy", "ours", step_ms=20.0),
        cell("large", "adam", "legacy", "tf_legacy", step_ms=30.0),
        cell("resnet", "adam", "legacy", "ours", step_ms=10.0),
        cell("resnet", "adam", "legacy", "tf_legacy", step_ms=20.0),
    ]
    v = verdict(records, target)
    assert v.status == targets.MET  # 30 / 20 = 1.5 is within ">= 1.5"
    assert v.measured == "worst 1.500x (large/adam/legacy), median 1.750x over 2 cells"

    records[0]["step_ms"] = 21.0
    v = verdict(records, target)
    assert v.status == targets.NOT_MET
    assert v.measured.startswith(f"worst {30 / 21:.3f}x (large/adam/legacy)")


def test_ftrl_in_either_family_is_held_to_tf_keras_legacy_ftrl_and_its_state_to_two_slots():
    records = [
        cell("large", "ftrl", "current", "ours", step_ms=25.0, state_array_bytes=3 * PARAMS_BYTES),
        cell("large", "ftrl", "legacy", "ours", step_ms=19.0),
        cell("large", "ftrl", "legacy", "tf_legacy", step_ms=20.0),
    ]
    v = verdict(records, "Ftrl step vs TF-Keras legacy (large, resnet)")
    assert v.status == targets.NOT_MET
    assert v.measured == f"worst 1.250 (large/ftrl/current), median {(25 / 20 + 19 / 20) / 2:.3f} over 2 cells"

    v = verdict(records, "Ftrl state is exactly 2 x params")
    assert v.status == targets.NOT_MET
    assert v.measured == "1 of 2 cells fail, e.g. large/ftrl/current: 3.0000 slots, expected 2"


def sweep(compile_s: list[float | None], leaves=(100, 500, 1000)) -> list[dict]:
    """Our scaling points (Adam, current): a compile time per leaf count, ``None`` for an overrun."""
    out = []
    for n, c in zip(leaves, compile_s):
        key = "many" if n == 2000 else f"leaves-{n}"
        if c is None:
            out.append(cell(key, "adam", "current", "ours", status="timeout", phase="compile", n_leaves=n))
        else:
            out.append(cell(key, "adam", "current", "ours", kind="scaling", compile_s=c, n_leaves=n))
    return out


def test_compile_growth_is_the_log_log_slope_between_consecutive_sweep_points():
    target = "Compile time grows sublinearly"
    v = verdict(sweep([1.0, 4.0, 9.0]), target)
    slopes = [math.log(4.0 / 1.0) / math.log(500 / 100), math.log(9.0 / 4.0) / math.log(1000 / 500)]
    assert slopes[0] < 1 < slopes[1]
    assert v.status == targets.NOT_MET
    assert v.measured == f"exponents 100->500: {slopes[0]:.2f}, 500->1000: {slopes[1]:.2f}"

    assert verdict(sweep([1.0, 4.0, 7.9]), target).status == targets.MET  # log(7.9/4)/log(2) = 0.98

    v = verdict(sweep([1.0, 4.0, 7.9, None], leaves=(100, 500, 1000, 2000)), target)
    assert v.status == targets.NOT_MET
    assert v.measured.endswith("; 2000 leaves: > compile budget")

    assert verdict(sweep([1.0]), target).status == targets.NOT_MEASURED


def test_the_keras_layer_is_held_to_the_fastest_pure_step_of_its_cell():
    target = "Keras layer's apply_gradients vs the fastest pure step"

    def records(layer_ms: float, flat_status: str = "ok") -> list[dict]:
        return [
            cell("large", "adam", "current", "ours", step_ms=10.0),
            cell("large", "adam", "current", "flat", status=flat_status, step_ms=5.0),
            cell("large", "adam", "current", "layer", step_ms=layer_ms),
        ]

    v = verdict(records(6.0), target, "jaxopt_keras layer")
    assert (v.status, v.measured) == (targets.MET, "worst 1.200 (large/adam/current), median 1.200 over 1 cells")
    assert verdict(records(6.1), target, "jaxopt_keras layer").status == targets.NOT_MET
    # Without the flat layout's figure the fastest pure step is the per-leaf one.
    v = verdict(records(6.1, flat_status="error"), target, "jaxopt_keras layer")
    assert (v.status, v.measured) == (targets.MET, f"worst {6.1 / 10:.3f} (large/adam/current), median 0.610 over 1 cells")


@pytest.mark.parametrize(
    "fields, target, why",
    [
        ({"steady_traces": 1, "steady_compiles": 0}, "Keras layer does not retrace", "1 traces, 0 compiles"),
        (
            {"device_to_host": {"transfers": True, "error": "XlaRuntimeError: Disallowed device-to-host"}},
            "Keras layer does not sync to the host",
            "XlaRuntimeError: Disallowed device-to-host",
        ),
        ({"device_to_host": None}, "Keras layer does not sync to the host", "no guard result"),
        (
            {"donated_fraction": 0.5},
            "Keras layer does not copy a full-size array",
            "donated 0.5, +0.0 MiB RSS during steps (params 0.0 MiB)",
        ),
        (
            {"steady_rss_peak": PARAMS_BYTES // 2},
            "Keras layer does not copy a full-size array",
            "donated 1.0, +0.0 MiB RSS during steps (params 0.0 MiB)",
        ),
    ],
)
def test_each_structural_check_of_the_layer_fails_on_its_own_symptom(fields, target, why):
    good = cell("large", "adam", "current", "layer", step_ms=1.0)
    bad = cell("resnet", "adam", "current", "layer", step_ms=1.0, **fields)
    assert verdict([good], target, "jaxopt_keras layer").status == targets.MET
    v = verdict([good, bad], target, "jaxopt_keras layer")
    assert (v.status, v.measured) == (targets.NOT_MET, f"1 of 2 cells fail, e.g. resnet/adam/current: {why}")


def test_state_size_counts_slots_from_the_bytes_and_the_slot_dtype():
    # bfloat16 params with float32 slots: the expected bytes are the record's own figure.
    target = "Optimizer state is exactly k x params"
    mixed = cell("gpt2", "adam", "current", "ours", params_bytes=1000, expected_state_bytes=4000, state_array_bytes=4000)
    assert verdict([mixed], target).status == targets.MET
    mixed["state_array_bytes"] = 2000
    v = verdict([mixed], target)
    assert (v.status, v.measured) == (targets.NOT_MET, "1 of 1 cells fail, e.g. gpt2/adam/current: 1.0000 slots, expected 2")


def test_state_size_counts_the_parameters_as_the_system_holds_them():
    # The flat layout pads a long buffer (250 float32 parameters held as 252):
    # its two slots are 2 x 252 elements, and that is exactly k x params.
    target = "Optimizer state is exactly k x params"
    flat = cell("large", "adam", "current", "flat", n_params=250, params_bytes=1000, expected_state_bytes=2000,
                held_params_elements=252, state_array_bytes=2016)
    assert verdict([flat], target, "jaxopt_keras.flat").status == targets.MET
    flat["state_array_bytes"] = 2000  # the slots of the unpadded parameters: not what the layout holds
    assert verdict([flat], target, "jaxopt_keras.flat").status == targets.NOT_MET


def test_the_summary_counts_each_status():
    records = [
        cell("large", "adam", "current", "ours", step_ms=11.0),
        cell("large", "adam", "current", "optax", step_ms=10.0),
    ]
    verdicts = targets.evaluate({"records": records, "systems": SYSTEMS, "config": CONFIG})
    counts = targets.summary(verdicts)
    assert sum(counts.values()) == len(verdicts)
    assert counts[targets.NOT_MET] == sum(v.status == targets.NOT_MET for v in verdicts) >= 1
