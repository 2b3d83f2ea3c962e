"""The project's performance targets, evaluated from a run's records.

Every verdict is computed here from the measured figures; the report only
prints them.  A target is *met* when every measured cell satisfies it, *not
met* when one does not (or when the system overran the compile budget in a
cell the target covers), and *not measured* when the run has no cell to judge
it by.

"The pure functional step" is each system of role ``"ours"`` (one row each);
the Keras layer is compared with the fastest of them in the same cell.

To add a target: a ratio to optax's figure is one row of :data:`VS_OPTAX`;
anything else is a function ``(Results) -> list[Verdict]`` (most are one call
of :func:`vs_peer` or :func:`all_cells`) listed in :data:`TARGETS`, in the
order the page shows them.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Callable, Iterable, Sequence

Record = dict[str, Any]

MET, NOT_MET, NOT_MEASURED = "met", "not met", "not measured"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One target for one system: what was required, what was measured, the verdict."""

    target: str
    system: str
    criterion: str
    measured: str
    status: str

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


class Results:
    """Lookup over a run's records (shared by the targets, the page and the plots)."""

    def __init__(self, results: dict):
        self.sparse: dict | None = results.get("sparse")
        self.records: list[Record] = results["records"]
        self.systems: list[dict] = results["systems"]
        self.config: dict = results["config"]
        self._cells = {(r["workload"], r["optimizer"], r["family"], r["system"]): r for r in self.records}

    def label(self, system: str) -> str:
        return next((s["label"] for s in self.systems if s["key"] == system), system)

    def role(self, role: str) -> list[str]:
        present = {r["system"] for r in self.records}
        return [s["key"] for s in self.systems if s["role"] == role and s["key"] in present]

    def get(self, workload: str, optimizer: str, family: str, system: str) -> Record | None:
        return self._cells.get((workload, optimizer, family, system))

    def cells(self, workload: str, system: str, family: str | None = None) -> list[Record]:
        return [
            r
            for r in self.records
            if r["workload"] == workload and r["system"] == system and (family is None or r["family"] == family)
        ]

    def applicable(self, system: str) -> list[Record]:
        """The records of ``system`` for the cells it applies to (all but N/A)."""
        return [r for r in self.records if r["system"] == system and r["status"] != "n/a"]

    def matrix_workloads(self) -> list[str]:
        """The run's matrix workloads that have records, in the run's order."""
        return [w for w in self.config["workloads"] if any(r["workload"] == w for r in self.records)]

    def rows(self, workload: str) -> list[tuple[str, str]]:
        """The (optimizer, family) cells of a matrix workload, in run order."""
        seen: list[tuple[str, str]] = []
        for r in self.records:
            if r["workload"] == workload and r["kind"] == "matrix" and (r["optimizer"], r["family"]) not in seen:
                seen.append((r["optimizer"], r["family"]))
        return seen

    def sweep(self, system: str) -> list[Record]:
        """The scaling sweep's points for ``system``, by number of leaves (none if it is not swept)."""
        if system not in self.config["scaling_systems"] or not self.config["scaling_leaves"]:
            return []
        opt, family = self.config["scaling_optimizer"], self.config["scaling_family"]
        points = [
            r
            for r in self.records
            if r["system"] == system
            and r["optimizer"] == opt
            and r["family"] == family
            and (r["workload"] == "many" or r["workload"].startswith("leaves-"))
        ]
        return sorted(points, key=lambda r: r["n_leaves"])


def ok(record: Record | None) -> bool:
    return record is not None and record.get("status") == "ok"


def overran_compile(record: Record | None) -> bool:
    return record is not None and record.get("status") == "timeout" and record.get("phase") == "compile"


def cell_name(r: Record) -> str:
    return f"{r['workload']}/{r['optimizer']}/{r['family']}"


def expected_state_bytes(r: Record) -> int:
    """k slots x the parameters' elements x the slot dtype's size; the elements
    as the system holds them (``held_params_elements``: the flat layout's
    padded buffers) where it reports them."""
    expected = r.get("expected_state_bytes", r["expected_slots"] * r["params_bytes"])
    held = r.get("held_params_elements")
    return expected if held is None else expected * held // r["n_params"]


def steady_extra(r: Record) -> int:
    """How far the timed steps pushed RSS above its level when they started (bytes)."""
    return max(0, r["steady_rss_peak"] - r["steady_rss_start"])


def _coverage(measured: int, total: int) -> str:
    return "" if measured == total else f"; {total - measured} of {total} cells not measured"


# --------------------------------------------------------------------------
# Verdicts over cells.
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Pairs:
    """Per-cell ratios against a reference: ``pairs`` where both were measured,
    ``total`` cells where the reference ran, ``overran`` cells whose compile
    overran its budget where the reference's did not."""

    pairs: list[tuple[Record, float]] = dataclasses.field(default_factory=list)
    total: int = 0
    overran: list[Record] = dataclasses.field(default_factory=list)


def against(
    cells: Iterable[Record], reference: Callable[[Record], Record | None], metric: str, inverse: bool = False
) -> Pairs:
    """``cell[metric] / reference(cell)[metric]`` (or its inverse) for each cell whose reference ran."""
    out = Pairs()
    for r in cells:
        ref = reference(r)
        if ref is None or ref["status"] == "n/a":
            continue
        out.total += 1
        if overran_compile(r) and ok(ref):
            out.overran.append(r)
        if not (ok(r) and ok(ref)):
            continue
        a, b = r.get(metric), ref.get(metric)
        if a is not None and b is not None and a > 0 and b > 0:
            out.pairs.append((r, b / a if inverse else a / b))
    return out


def ratio_verdict(
    target: str, system: str, criterion: str, found: Pairs, limit: float, at_least: bool = False, unit: str = ""
) -> Verdict:
    """A verdict over per-cell ratios: all ``<= limit`` (or ``>= limit`` with ``at_least``)."""
    if found.overran:
        r = found.overran[0]
        measured = f"{cell_name(r)}: compile > {r['budget_s']:.0f} s (the compile budget)"
        return Verdict(target, system, criterion, measured, NOT_MET)
    if not found.pairs:
        return Verdict(target, system, criterion, f"no cell measured ({found.total} planned)", NOT_MEASURED)
    worst_record, worst = (min if at_least else max)(found.pairs, key=lambda p: p[1])
    good = worst >= limit if at_least else worst <= limit
    median = statistics.median(v for _, v in found.pairs)
    measured = (
        f"worst {worst:.3f}{unit} ({cell_name(worst_record)}), median {median:.3f}{unit} "
        f"over {len(found.pairs)} cells{_coverage(len(found.pairs), found.total)}"
    )
    return Verdict(target, system, criterion, measured, MET if good else NOT_MET)


def vs_peer(
    res: Results,
    target: str,
    systems: Sequence[str],
    limits: Sequence[tuple[Sequence[str], float]],
    peer: str,
    metric: str,
    criterion: str,
    *,
    optimizer: str | None = None,
    family: str | None = None,
    peer_family: str | None = None,
    at_least: bool = False,
) -> list[Verdict]:
    """For each system and each ``(workloads, limit)``: the record field ``metric`` / the peer's in the
    same cell <= ``limit`` (with ``at_least``: the peer's / ours >= ``limit``).

    ``target`` and ``criterion`` may use ``{workloads}`` and ``{limit}``.
    ``optimizer`` and ``family`` keep those cells only; ``peer_family``
    compares every family's cell with the peer's cell of that family.
    """
    out = []
    for system in systems:
        for keys, limit in limits:
            cells = [r for w in keys for r in res.cells(w, system, family) if optimizer in (None, r["optimizer"])]
            found = against(
                cells,
                lambda r: res.get(r["workload"], r["optimizer"], peer_family or r["family"], peer),
                metric,
                inverse=at_least,
            )
            names = {"workloads": ", ".join(keys), "limit": limit}
            verdict = ratio_verdict(
                target.format(**names),
                res.label(system),
                criterion.format(**names),
                found,
                limit,
                at_least=at_least,
                unit="x" if at_least else "",
            )
            out.append(verdict)
    return out


def all_cells(
    target: str, system: str, criterion: str, records: Sequence[Record], fails: Callable[[Record], str | None]
) -> Verdict:
    """Met when ``fails`` finds nothing wrong (``None``) in every measured one of ``records``;
    otherwise it says what the first failing cell showed."""
    measured = [r for r in records if ok(r)]
    if not measured:
        return Verdict(target, system, criterion, f"no cell measured ({len(records)} planned)", NOT_MEASURED)
    bad = [(r, why) for r in measured if (why := fails(r)) is not None]
    if bad:
        r, why = bad[0]
        return Verdict(
            target, system, criterion, f"{len(bad)} of {len(measured)} cells fail, e.g. {cell_name(r)}: {why}", NOT_MET
        )
    return Verdict(target, system, criterion, f"all {len(measured)} cells{_coverage(len(measured), len(records))}", MET)


# What each all-cells check requires, and the check: None, or what went wrong.
STATE_IS_K_PARAMS = "bytes of the state's non-scalar leaves = k slots x params x the slot dtype's size"
NO_COPY = "every donated buffer reused, and timed steps hold < params/2 extra RSS"


def state_mismatch(r: Record) -> str | None:
    if r["state_array_bytes"] == expected_state_bytes(r):
        return None
    return f"{r['state_array_bytes'] / expected_state_bytes(r) * r['expected_slots']:.4f} slots, expected {r['expected_slots']}"


def copy_made(r: Record) -> str | None:
    """Donation took effect and the timed steps held no extra half-params-size memory, else what was seen."""
    if r.get("donated_fraction") == 1.0 and steady_extra(r) < r["params_bytes"] / 2:
        return None
    mib = 2**20
    return (
        f"donated {r.get('donated_fraction')}, +{steady_extra(r) / mib:.1f} MiB RSS during steps "
        f"(params {r['params_bytes'] / mib:.1f} MiB)"
    )


def retraced(r: Record) -> str | None:
    if (r.get("steady_traces") or 0) + (r.get("steady_compiles") or 0) == 0:
        return None
    return f"{r.get('steady_traces')} traces, {r.get('steady_compiles')} compiles"


def synced(r: Record) -> str | None:
    guard = r.get("device_to_host") or {}
    if guard.get("transfers") is False:
        return None
    return guard.get("error") or "no guard result"


# --------------------------------------------------------------------------
# The targets, in the page's order.
# --------------------------------------------------------------------------


# Each pure step's figure against optax's in the same cell, every optimizer both
# have, both families: (target, record field, what the field is, {workload: limit}).
# fmt: off
VS_OPTAX = (
    ("Pure functional step vs optax", "step_ms", "step time", {"large": 1.0, "resnet": 1.0, "many": 0.5}),
    ("Time to the first step vs optax", "time_to_first_step_s", "init + trace + lower + compile + first step",
     {"resnet": 0.8, "leaves-1000": 0.6, "many": 0.6}),
    ("XLA compile time vs optax", "backend_compile_s", "Lowered.compile() seconds",
     {"resnet": 0.8, "leaves-1000": 1.0, "many": 1.0}),
    ("Eager init builds no per-shape XLA program", "init_s", "eager init(params) seconds",
     {"leaves-1000": 0.1, "many": 0.1}),
    ("jax.jit(init) no slower than optax's", "jit_init_s", "first call of jax.jit(init) (trace, compile, run)",
     {"leaves-1000": 1.0, "many": 1.0}),
)
# fmt: on


def vs_optax(res: Results) -> list[Verdict]:
    """The targets of :data:`VS_OPTAX`, for each pure functional step."""
    return [
        v
        for target, field, what, limits in VS_OPTAX
        for v in vs_peer(
            res,
            target + " on {workloads}",
            res.role("ours"),
            [((w,), limit) for w, limit in limits.items()],
            "optax",
            field,
            what + " / optax's <= {limit}",
        )
    ]


def growth_exponents(points: Sequence[Record], key: str) -> list[tuple[int, int, float]]:
    """``(n1, n2, exponent)`` per segment of consecutive measured points: ``log(t2/t1) / log(n2/n1)``."""
    measured = [r for r in points if ok(r) and r.get(key) is not None and r[key] > 0]
    return [
        (a["n_leaves"], b["n_leaves"], math.log(b[key] / a[key]) / math.log(b["n_leaves"] / a["n_leaves"]))
        for a, b in zip(measured, measured[1:])
    ]


def compile_sublinear(res: Results) -> list[Verdict]:
    """Compile time grows sublinearly with the number of leaves (every segment's exponent < 1)."""
    out = []
    for system in res.role("ours"):
        target, criterion = "Compile time grows sublinearly", "growth exponent < 1 between every two sweep points"
        points = res.sweep(system)
        segments = growth_exponents(points, "compile_s")
        over = [
            r
            for r in points
            if r["status"] == "timeout" or (r["status"] == "skipped" and "compile budget" in r.get("note", ""))
        ]
        shown = ", ".join(f"{a}->{b}: {e:.2f}" for a, b, e in segments)
        if over:
            measured = (shown + "; " if shown else "") + f"{over[0]['n_leaves']} leaves: > compile budget"
            status = NOT_MET
        elif not segments:
            measured, status = "fewer than two sweep points", NOT_MEASURED
        else:
            measured, status = f"exponents {shown}", MET if all(e < 1.0 for _, _, e in segments) else NOT_MET
        out.append(Verdict(target, res.label(system), criterion, measured, status))
    return out


def _fastest_ours(res: Results, r: Record) -> Record | None:
    measured = [c for s in res.role("ours") if ok(c := res.get(r["workload"], r["optimizer"], r["family"], s))]
    return min(measured, key=lambda c: c["step_ms"]) if measured else None


def layer_targets(res: Results) -> list[Verdict]:
    """Within 1.2x of the fastest pure step on every workload; no retrace, no host sync, no full-size copy."""
    out = []
    for system in res.role("layer"):
        label = res.label(system)
        records = res.applicable(system)
        found = against(records, lambda r: _fastest_ours(res, r) or {"status": "skipped"}, "step_ms")
        found.total = len(records)
        criterion = "step time / the fastest pure step's in the same cell <= 1.2"
        out += [
            ratio_verdict("Keras layer's apply_gradients vs the fastest pure step", label, criterion, found, 1.2),
            all_cells(
                "Keras layer does not retrace", label, "no trace or compile in the timed steps", records, retraced
            ),
            all_cells(
                "Keras layer does not sync to the host", label, "no implicit device-to-host transfer", records, synced
            ),
            all_cells("Keras layer does not copy a full-size array", label, NO_COPY, records, copy_made),
        ]
    return out


def vs_tf_keras(res: Results) -> list[Verdict]:
    """At least 1.5x faster than TF-Keras legacy apply_gradients on large and resnet."""
    return vs_peer(
        res,
        "Faster than TF-Keras legacy apply_gradients ({workloads})",
        res.role("ours") + res.role("layer"),
        [(("large", "resnet"), 1.5)],
        "tf_legacy",
        "step_ms",
        "TF-Keras's step time / ours >= {limit}",
        family="legacy",
        at_least=True,
    )


def ftrl_targets(res: Results) -> list[Verdict]:
    """Ftrl's step at or below TF-Keras legacy's on large and resnet, both families; its state exactly 2x params."""
    systems = res.role("ours") + res.role("layer")
    out = vs_peer(
        res,
        "Ftrl step vs TF-Keras legacy ({workloads})",
        systems,
        [(("large", "resnet"), 1.0)],
        "tf_legacy",
        "step_ms",
        "step time / TF-Keras legacy Ftrl's <= {limit}, both families",
        optimizer="ftrl",
        peer_family="legacy",
    )
    for system in systems:
        records = [r for r in res.applicable(system) if r["optimizer"] == "ftrl"]
        out.append(
            all_cells("Ftrl state is exactly 2 x params", res.label(system), STATE_IS_K_PARAMS, records, state_mismatch)
        )
    return out


def state_size(res: Results) -> list[Verdict]:
    """Optimizer state is exactly k x params; a donated step holds no extra full-size copy."""
    target = "Optimizer state is exactly k x params"
    out = [
        all_cells(target, res.label(s), STATE_IS_K_PARAMS, res.applicable(s), state_mismatch)
        for s in res.role("ours") + res.role("layer")
    ]
    target = "A donated step holds no extra full-size copy"
    return out + [all_cells(target, res.label(s), NO_COPY, res.applicable(s), copy_made) for s in res.role("ours")]


def sparse_speedup(res: Results) -> list[Verdict]:
    """Row-sparse steps of row-only optimizers at least 10x faster than their dense steps."""
    target = "sparse step >= 10x faster than dense (1M x 64 embedding, 4096 rows)"
    if not res.sparse:
        return [Verdict(target, "jaxopt_keras", ">= 10x", "not run", NOT_MEASURED)]
    out = []
    need = res.sparse["target_speedup"]
    for case in res.sparse["cases"]:
        if not case["rows_only"]:
            continue
        label = f"{case['family']} {case['optimizer']}" + (f" {case['kwargs']}" if case["kwargs"] else "")
        out.append(
            Verdict(
                target,
                label,
                f">= {need:.0f}x",
                f"{case['speedup']:.1f}x ({case['dense_ms']:.1f} ms -> {case['sparse_ms']:.2f} ms)",
                MET if case["speedup"] >= need else NOT_MET,
            )
        )
    return out


TARGETS: tuple[Callable[[Results], list[Verdict]], ...] = (
    vs_optax,
    compile_sublinear,
    layer_targets,
    vs_tf_keras,
    ftrl_targets,
    state_size,
    sparse_speedup,
)


def evaluate(results: dict) -> list[Verdict]:
    """Every target, in the page's order."""
    res = Results(results)
    return [v for target in TARGETS for v in target(res)]


def summary(verdicts: Iterable[Verdict]) -> dict[str, int]:
    counts = {MET: 0, NOT_MET: 0, NOT_MEASURED: 0}
    for v in verdicts:
        counts[v.status] += 1
    return counts
