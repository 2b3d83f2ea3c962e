"""The project's performance targets, evaluated from a run's records.

Every verdict is computed here from the measured figures; the report only
prints them.  A target is *met* when every measured cell satisfies it, *not
met* when one does not (or when the system overran a budget the target lies
within), and *not measured* when the run has no cell to judge it by.

"The pure functional step" is each system of role ``"ours"`` (one row each);
the Keras layer is compared with the fastest of them in the same cell.
"""

from __future__ import annotations

import dataclasses
import math
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
    """Lookup over a run's records."""

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


def cell_name(r: Record) -> str:
    return f"{r['workload']}/{r['optimizer']}/{r['family']}"


def _fmt_ratio(x: float) -> str:
    return f"{x:.3f}"


def _coverage(measured: int, total: int) -> str:
    return "" if measured == total else f"; {total - measured} of {total} cells not measured"


def _ratio_verdict(
    target: str,
    system: str,
    criterion: str,
    pairs: Sequence[tuple[Record, float]],
    total: int,
    limit: float,
    at_least: bool = False,
    unit: str = "",
) -> Verdict:
    """A verdict over per-cell ratios: all ``<= limit`` (or ``>= limit`` with ``at_least``)."""
    if not pairs:
        return Verdict(target, system, criterion, f"no cell measured ({total} planned)", NOT_MEASURED)
    worst_record, worst = (min if at_least else max)(pairs, key=lambda p: p[1])
    good = worst >= limit if at_least else worst <= limit
    values = sorted(v for _, v in pairs)
    median = (
        values[len(values) // 2] if len(values) % 2 else 0.5 * (values[len(values) // 2 - 1] + values[len(values) // 2])
    )
    measured = (
        f"worst {_fmt_ratio(worst)}{unit} ({cell_name(worst_record)}), median {_fmt_ratio(median)}{unit} "
        f"over {len(pairs)} cells{_coverage(len(pairs), total)}"
    )
    return Verdict(target, system, criterion, measured, MET if good else NOT_MET)


# --------------------------------------------------------------------------
# The targets.
# --------------------------------------------------------------------------


def _against(
    res: Results, cells: Iterable[Record], peer_system: str, ratio: Callable[[Record, Record], float]
) -> tuple[list[tuple[Record, float]], int]:
    """``(pairs, total)``: each cell the peer ran (not "n/a") counts in ``total``;
    where both measured, ``(cell, ratio(cell, peer))`` is a pair."""
    pairs, total = [], 0
    for r in cells:
        peer = res.get(r["workload"], r["optimizer"], r["family"], peer_system)
        if peer is None or peer["status"] == "n/a":
            continue
        total += 1
        if ok(r) and ok(peer):
            pairs.append((r, ratio(r, peer)))
    return pairs, total


def step_vs_optax(res: Results) -> list[Verdict]:
    """No slower than optax on large and resnet; at most half its time on many."""
    out = []
    for system in res.role("ours"):
        for workload, limit in (("large", 1.0), ("resnet", 1.0), ("many", 0.5)):
            target = f"Pure functional step vs optax on {workload}"
            pairs, total = _against(
                res, res.cells(workload, system), "optax", lambda r, peer: r["step_ms"] / peer["step_ms"]
            )
            out.append(
                _ratio_verdict(target, res.label(system), f"step time / optax's <= {limit}", pairs, total, limit)
            )
    return out


def compile_2000(res: Results) -> list[Verdict]:
    """The 2000-leaf tree compiles in <= 2 s."""
    out = []
    for system in res.role("ours"):
        target, criterion = "2000-leaf tree compiles fast", "compile time on many <= 2 s"
        cells = [r for r in res.cells("many", system) if r["status"] != "n/a"]
        over = [r for r in cells if r["status"] == "timeout"]
        done = [r for r in cells if ok(r)]
        if over:
            r = over[0]
            measured = f"> {r['budget_s']:.0f} s ({cell_name(r)}: the compile budget)"
            out.append(Verdict(target, res.label(system), criterion, measured, NOT_MET))
        elif not done:
            out.append(Verdict(target, res.label(system), criterion, "no cell measured", NOT_MEASURED))
        else:
            worst = max(done, key=lambda r: r["compile_s"])
            best = min(r["compile_s"] for r in done)
            measured = (
                f"worst {worst['compile_s']:.2f} s ({cell_name(worst)}), best {best:.2f} s "
                f"over {len(done)} cells{_coverage(len(done), len(cells))}"
            )
            out.append(
                Verdict(target, res.label(system), criterion, measured, MET if worst["compile_s"] <= 2.0 else NOT_MET)
            )
    return out


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
            r = over[0]
            measured = (shown + "; " if shown else "") + f"{r['n_leaves']} leaves: > compile budget"
            out.append(Verdict(target, res.label(system), criterion, measured, NOT_MET))
        elif not segments:
            out.append(Verdict(target, res.label(system), criterion, "fewer than two sweep points", NOT_MEASURED))
        else:
            good = all(e < 1.0 for _, _, e in segments)
            out.append(Verdict(target, res.label(system), criterion, f"exponents {shown}", MET if good else NOT_MET))
    return out


def _fastest_ours(res: Results, r: Record) -> Record | None:
    candidates = [res.get(r["workload"], r["optimizer"], r["family"], s) for s in res.role("ours")]
    measured = [c for c in candidates if ok(c)]
    return min(measured, key=lambda c: c["step_ms"]) if measured else None


def layer_targets(res: Results) -> list[Verdict]:
    """Within 1.1x of the pure donated step; no retrace, no host sync, no full-size copy."""
    out = []
    for system in res.role("layer"):
        label = res.label(system)
        records = res.applicable(system)
        measured = [r for r in records if ok(r)]
        pairs = []
        for r in measured:
            ref = _fastest_ours(res, r)
            if ref is not None:
                pairs.append((r, r["step_ms"] / ref["step_ms"]))
        out.append(
            _ratio_verdict(
                "Keras layer's apply_gradients vs the pure donated step",
                label,
                "step time / fastest pure step's <= 1.1",
                pairs,
                len(records),
                1.1,
            )
        )
        out.append(
            _all_cells(
                "Keras layer does not retrace",
                label,
                "no trace or compile during the timed steps",
                measured,
                len(records),
                lambda r: (r.get("steady_traces") or 0) + (r.get("steady_compiles") or 0) == 0,
                lambda r: f"{r.get('steady_traces')} traces, {r.get('steady_compiles')} compiles",
            )
        )
        out.append(
            _all_cells(
                "Keras layer does not sync to the host",
                label,
                "no implicit device-to-host transfer in a step",
                measured,
                len(records),
                lambda r: not (r.get("device_to_host") or {}).get("transfers", True),
                lambda r: (r.get("device_to_host") or {}).get("error") or "no guard result",
            )
        )
        out.append(_no_copy("Keras layer does not copy a full-size array", label, measured, len(records)))
    return out


def _all_cells(
    target: str,
    system: str,
    criterion: str,
    measured: Sequence[Record],
    total: int,
    good: Callable[[Record], bool],
    describe: Callable[[Record], str],
) -> Verdict:
    """Met when ``good`` holds for every measured cell; ``describe`` tells what a failing cell showed."""
    if not measured:
        return Verdict(target, system, criterion, f"no cell measured ({total} planned)", NOT_MEASURED)
    bad = [r for r in measured if not good(r)]
    if bad:
        return Verdict(
            target,
            system,
            criterion,
            f"{len(bad)} of {len(measured)} cells fail, e.g. {cell_name(bad[0])}: {describe(bad[0])}",
            NOT_MET,
        )
    return Verdict(target, system, criterion, f"all {len(measured)} cells{_coverage(len(measured), total)}", MET)


def steady_extra(r: Record) -> int:
    """How far the timed steps pushed RSS above its level when they started (bytes)."""
    return max(0, r["steady_rss_peak"] - r["steady_rss_start"])


def _no_copy(target: str, system: str, measured: Sequence[Record], total: int) -> Verdict:
    """Donation took effect and the timed steps held no extra half-params-size memory."""
    return _all_cells(
        target,
        system,
        "every donated buffer reused, and timed steps hold < params/2 extra RSS",
        measured,
        total,
        lambda r: r.get("donated_fraction") == 1.0 and steady_extra(r) < r["params_bytes"] / 2,
        lambda r: (
            f"donated {r.get('donated_fraction')}, +{steady_extra(r) / 2**20:.1f} MiB RSS during steps "
            f"(params {r['params_bytes'] / 2**20:.1f} MiB)"
        ),
    )


def vs_tf_keras(res: Results) -> list[Verdict]:
    """At least 1.5x faster than TF-Keras legacy apply_gradients on large and resnet."""
    out = []
    for system in res.role("ours") + res.role("layer"):
        cells = [r for workload in ("large", "resnet") for r in res.cells(workload, system, family="legacy")]
        pairs, total = _against(res, cells, "tf_legacy", lambda r, peer: peer["step_ms"] / r["step_ms"])
        out.append(
            _ratio_verdict(
                "Faster than TF-Keras legacy apply_gradients (large, resnet)",
                res.label(system),
                "TF-Keras's step time / ours >= 1.5",
                pairs,
                total,
                1.5,
                at_least=True,
                unit="x",
            )
        )
    return out


def state_size(res: Results) -> list[Verdict]:
    """Optimizer state is exactly k x params; a donated step holds no extra full-size copy."""
    out = []
    for system in res.role("ours") + res.role("layer"):
        records = res.applicable(system)
        measured = [r for r in records if ok(r)]
        out.append(
            _all_cells(
                "Optimizer state is exactly k x params",
                res.label(system),
                "bytes of the state's non-scalar leaves = k x params bytes",
                measured,
                len(records),
                lambda r: r["state_array_bytes"] == r["expected_slots"] * r["params_bytes"],
                lambda r: f"{r['state_array_bytes'] / r['params_bytes']:.4f} x params, expected {r['expected_slots']}",
            )
        )
    for system in res.role("ours"):
        records = res.applicable(system)
        out.append(
            _no_copy(
                "A donated step holds no extra full-size copy",
                res.label(system),
                [r for r in records if ok(r)],
                len(records),
            )
        )
    return out


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


def evaluate(results: dict) -> list[Verdict]:
    """Every target, in the page's order."""
    res = Results(results)
    verdicts: list[Verdict] = []
    for part in (step_vs_optax, compile_2000, compile_sublinear, layer_targets, vs_tf_keras, state_size, sparse_speedup):
        verdicts.extend(part(res))
    return verdicts


def summary(verdicts: Iterable[Verdict]) -> dict[str, int]:
    counts = {MET: 0, NOT_MET: 0, NOT_MEASURED: 0}
    for v in verdicts:
        counts[v.status] += 1
    return counts
