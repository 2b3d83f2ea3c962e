"""The Markdown page (``docs/performance.md``) written from a run's results.

Everything on the page is computed from the results JSON, so the page can be
regenerated from it (``python -m benchmarks --report-only``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from benchmarks import targets
from benchmarks.targets import Record, Results, ok, steady_extra

MiB = 2**20
GiB = 2**30


class Notes:
    """Numbered footnotes for table cells, deduplicated by text."""

    def __init__(self) -> None:
        self._texts: list[str] = []

    def mark(self, text: str) -> str:
        if text not in self._texts:
            self._texts.append(text)
        return f"[{self._texts.index(text) + 1}]"

    def render(self) -> list[str]:
        if not self._texts:
            return []
        return [""] + [f"[{i}] {t}  " for i, t in enumerate(self._texts, 1)]


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> list[str]:
    """A Markdown table; ``align`` has one character per column, ``l`` or ``r``."""
    align = align or "l" * len(header)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def status_text(r: Record | None, notes: Notes) -> str | None:
    """The cell text of a record that has no value (N/A, skipped, timeout, error), else ``None``."""
    if r is None:
        return "—"
    status = r["status"]
    if status == "ok":
        return None
    if status == "n/a":
        return "n/a"
    if status == "timeout":
        if r.get("phase") == "compile":
            return f"> {r['budget_s']:.0f} s compile"
        return "timeout " + notes.mark(r.get("note", ""))
    label = "skipped" if status == "skipped" else "error"
    return f"{label} {notes.mark(r.get('note', ''))}"


def value_cell(r: Record | None, notes: Notes, fmt: Callable[[Record], str]) -> str:
    text = status_text(r, notes)
    if text is not None:
        return text
    assert r is not None
    out = fmt(r)
    if r.get("reused_from") is not None:
        out += " " + notes.mark(r["note"])
    return out


def ratio_cell(a: Record | None, b: Record | None) -> str:
    if ok(a) and ok(b):
        assert a is not None and b is not None
        return f"{a['step_ms'] / b['step_ms']:.2f}"
    return "—"


class Page:
    """Builds the page's sections from :class:`benchmarks.targets.Results`."""

    def __init__(self, results: dict, image_names: dict[str, str]):
        self.raw = results
        self.res = Results(results)
        self.meta = results["meta"]
        self.cfg = results["config"]
        self.images = image_names
        present = {r["system"] for r in self.res.records}
        self.systems = [s for s in results["systems"] if s["key"] in present]
        self.workloads = {w["key"]: w for w in results["workloads"]}
        self.optimizers = {o["key"]: o for o in results["optimizers"]}

    # -- helpers -------------------------------------------------------------
    def matrix_workloads(self) -> list[str]:
        return [w for w in self.cfg["workloads"] if any(r["workload"] == w for r in self.res.records)]

    def rows(self, workload: str) -> list[tuple[str, str]]:
        """The (optimizer, family) cells of a workload, in run order."""
        seen: list[tuple[str, str]] = []
        for r in self.res.records:
            if r["workload"] == workload and r["kind"] == "matrix" and (r["optimizer"], r["family"]) not in seen:
                seen.append((r["optimizer"], r["family"]))
        return seen

    def opt_label(self, key: str) -> str:
        return self.optimizers.get(key, {}).get("label", key)

    def workload_heading(self, key: str) -> str:
        w = self.workloads[key]
        leaves = "1 leaf" if w["n_leaves"] == 1 else f"{w['n_leaves']:,} leaves"
        return f"### `{key}`: {w['description']} ({leaves}, {w['n_params']:,} parameters, {w['bytes'] / MiB:.1f} MiB)"

    def ratio_pairs(self) -> list[tuple[dict, dict]]:
        """(numerator, denominator) system pairs of the ratio tables."""
        ours = [s for s in self.systems if s["role"] == "ours"]
        layers = [s for s in self.systems if s["role"] == "layer"]
        peers = [s for s in self.systems if s["role"] == "peer"]
        return [(a, p) for a in ours + layers for p in peers] + [(lay, o) for lay in layers for o in ours]

    # -- sections ------------------------------------------------------------
    def header(self) -> list[str]:
        m = self.meta
        mode = "full run" if self.cfg["mode"] == "full" else f"**{self.cfg['mode']} run** (reduced coverage)"
        git = m.get("git") or {}
        commit = (
            f"commit `{git['commit']}`" + (" with local changes" if git.get("dirty") else "")
            if git
            else "no git checkout"
        )
        return [
            "# Performance",
            "",
            "<!-- Written by `python -m benchmarks` (make bench) from its results JSON; do not edit by hand. -->",
            "",
            f"Measured on {m['date']}, {mode}, {commit}, in {m.get('duration_s', 0) / 60:.1f} minutes. "
            "Regenerate with `make bench` (about 30 minutes; `make bench-quick` for a 2-minute check that "
            "writes to `build/bench-quick/`).",
        ]

    def machine(self) -> list[str]:
        m = self.meta
        v = m["versions"]
        versions = ", ".join(f"{k} {v[k]}" for k in v)
        ram = f"{m['ram_bytes'] / GiB:.1f} GiB" if m.get("ram_bytes") else "unknown"
        load = f"{m.get('load_average_start')} at the start, {m.get('load_average_end')} at the end"
        return [
            "",
            "## Machine",
            "",
            *table(
                ["CPU", "cores (usable)", "RAM", "OS", "load average (1, 5, 15 min)"],
                [[m["cpu_model"], f"{m['logical_cores']} ({m['usable_cores']})", ram, m["os"], load]],
            ),
            "",
            f"Software: {versions}.",
            "",
            "A load average above the core count means other processes shared the CPU: "
            "the timings are then noisy and the ratios less reliable than on an idle machine.",
        ]

    def method(self) -> list[str]:
        c = self.cfg
        lines = [
            "",
            "## Method",
            "",
            "Each system runs one optimizer step per call, in one worker process, one after another, "
            "under the same conditions: jitted (`tf.function` for TF-Keras), the parameters' and the "
            "state's buffers donated where the system allows it, the inputs placed on the device "
            "before timing, each step blocked on until its result is ready (`jax.block_until_ready`). "
            f"After the compile and {c['warmup']} warm-up steps, {c['repeats']} steps are timed "
            f"({c['scaling_repeats']} per scaling point) and the median is reported. The same gradient "
            "is applied at every step.",
            "",
            "Systems:",
            "",
        ]
        lines += [f"- **{s['label']}** (`{s['key']}`, {s['role']}): {s['description']}." for s in self.systems]
        lines += [
            "",
            "Optimizers (the same Keras arguments for every system; optax gets its nearest equivalent): "
            + "; ".join(
                f"{o['class_name']} `{o['kwargs']}` ({o['slots']} slot{'s' if o['slots'] != 1 else ''})"
                for o in self.optimizers.values()
                if any(r["optimizer"] == o["key"] for r in self.res.records)
            )
            + ".",
            "",
            "- *Ratios* divide our step time by the peer's: below 1.00 we are faster.",
            "- *Fastest (GB/s)*: the least memory traffic of a step, (2k + 3) x the parameters' bytes for an "
            "optimizer with k slots (read params, grads and slots; write params and slots), divided by the "
            "fastest system's step time: how close that system comes to the machine's memory bandwidth.",
            "- *Compile time*: for jitted functions the wall time of `lower(...).compile()`; for the "
            "Keras layer and TF-Keras the first call (trace, compile and one step).",
            "- *Peak RSS*: the process's resident-set high-water mark (`getrusage`), reset before each "
            "measurement (`/proc/self/clear_refs`); shown above the RSS at the measurement's start. *Steady*: "
            "how far the timed steps push RSS above its level when they start (a step that allocates a "
            "full-size copy shows it there).",
            "- *State*: bytes of the optimizer state's non-scalar leaves divided by the parameters' bytes "
            "(the step counter and hyperparameters are a few scalars more).",
            f"- *Budgets*: a compile longer than {c['compile_budget_s']:.0f} s is killed and shown as "
            f'"> {c["compile_budget_s"]:.0f} s compile"; a system that spent {c["group_budget_s"]:.0f} s '
            "compiling on one workload, or overran once, skips that workload's remaining cells; scaling points "
            "predicted to overrun are skipped; the run stops starting tasks after "
            f"{c['deadline_s'] / 60:.0f} minutes.  On `many`, the flat layout runs every cell; the per-leaf "
            f"systems ({', '.join(c.get('many_per_leaf_systems', ()))}) run "
            f"{', '.join(c.get('many_per_leaf_optimizers', ()))} with a compile budget of "
            f"{c.get('many_compile_budget_s', c['compile_budget_s']):.0f} s (one to three minutes per compile "
            "for 2000 distinct shapes).",
        ]
        return lines

    def targets(self) -> list[str]:
        verdicts = targets.evaluate(self.raw)
        counts = targets.summary(verdicts)
        mark = {targets.MET: "met", targets.NOT_MET: "**not met**", targets.NOT_MEASURED: "not measured"}
        rows = [[v.target, v.system, v.criterion, v.measured, mark[v.status]] for v in verdicts]
        return [
            "",
            "## Targets",
            "",
            "The project's performance targets, each evaluated from this run's measurements: "
            f"{counts[targets.MET]} met, {counts[targets.NOT_MET]} not met, "
            f"{counts[targets.NOT_MEASURED]} not measured.",
            "",
            *table(["Target", "System", "Criterion", "Measured", "Status"], rows),
        ]

    def step_times(self) -> list[str]:
        lines = ["", "## Step time", "", f"![Step time by workload and system]({self.images['step']})"]
        for w in self.matrix_workloads():
            notes = Notes()
            lines += ["", self.workload_heading(w), ""]
            header = ["Optimizer", "Family"] + [f"{s['label']} (ms)" for s in self.systems] + ["Fastest (GB/s)"]
            rows = []
            for opt, fam in self.rows(w):
                cells = [
                    value_cell(self.res.get(w, opt, fam, s["key"]), notes, lambda r: f"{r['step_ms']:.2f}")
                    for s in self.systems
                ]
                rows.append([self.opt_label(opt), fam] + cells + [self.bandwidth(w, opt, fam)])
            lines += table(header, rows, "ll" + "r" * (len(self.systems) + 1))
            pairs = self.ratio_pairs()
            if pairs:
                lines += ["", "Ratios (step time of the first / the second):", ""]
                header = ["Optimizer", "Family"] + [f"{a['label']} / {b['label']}" for a, b in pairs]
                rows = []
                for opt, fam in self.rows(w):
                    cells = [
                        ratio_cell(self.res.get(w, opt, fam, a["key"]), self.res.get(w, opt, fam, b["key"]))
                        for a, b in pairs
                    ]
                    rows.append([self.opt_label(opt), fam] + cells)
                lines += table(header, rows, "ll" + "r" * len(pairs))
            lines += notes.render()
        return lines

    def bandwidth(self, workload: str, optimizer: str, family: str) -> str:
        """The fastest system's effective bandwidth: minimum traffic / its step time.

        A step reads params, grads and the k slots and writes params and the
        slots: (2k + 3) x the params' bytes at the least.
        """
        measured = [r for s in self.systems if ok(r := self.res.get(workload, optimizer, family, s["key"]))]
        if not measured:
            return "—"
        best = min(measured, key=lambda r: r["step_ms"])
        traffic = (2 * best["expected_slots"] + 3) * best["params_bytes"]
        return f"{traffic / best['step_ms'] / 1e6:.1f} ({self.res.label(best['system'])})"

    def compile_times(self) -> list[str]:
        lines = ["", "## Compile time", "", "Seconds; † marks a first-call time (trace, compile and one step)."]
        for w in self.matrix_workloads():
            notes = Notes()
            lines += ["", self.workload_heading(w), ""]
            header = ["Optimizer", "Family"] + [f"{s['label']} (s)" for s in self.systems]
            rows = []
            for opt, fam in self.rows(w):
                cells = [
                    value_cell(
                        self.res.get(w, opt, fam, s["key"]),
                        notes,
                        lambda r: f"{r['compile_s']:.2f}" + ("†" if r["compile_method"] == "first call" else ""),
                    )
                    for s in self.systems
                ]
                rows.append([self.opt_label(opt), fam] + cells)
            lines += table(header, rows, "ll" + "r" * len(self.systems))
            lines += notes.render()
        return lines

    def memory(self) -> list[str]:
        lines = [
            "",
            "## Memory",
            "",
            "Per cell: optimizer state / params · process peak RSS (above the RSS at the measurement's start) · "
            "extra RSS during the timed steps. MiB.",
        ]

        def fmt(r: Record) -> str:
            state = r["state_array_bytes"] / r["params_bytes"]
            peak = r["rss_peak"] / MiB
            delta = (r["rss_peak"] - r["rss_start"]) / MiB
            return f"{state:.2f}× · {peak:,.0f} (+{delta:,.0f}) · +{steady_extra(r) / MiB:,.0f}"

        for w in self.matrix_workloads():
            notes = Notes()
            lines += ["", self.workload_heading(w), ""]
            header = ["Optimizer (k slots)", "Family"] + [s["label"] for s in self.systems]
            rows = []
            for opt, fam in self.rows(w):
                cells = [value_cell(self.res.get(w, opt, fam, s["key"]), notes, fmt) for s in self.systems]
                rows.append([f"{self.opt_label(opt)} ({self.optimizers[opt]['slots']})", fam] + cells)
            lines += table(header, rows, "ll" + "r" * len(self.systems))
            lines += notes.render()
        return lines

    def structure(self) -> list[str]:
        rows = []
        for s in self.systems:
            measured = [
                r for r in self.res.records if r["system"] == s["key"] and ok(r) and r.get("steady_traces") is not None
            ]
            if not measured:
                continue
            retrace = sum(1 for r in measured if (r["steady_traces"] or 0) + (r["steady_compiles"] or 0) > 0)
            donated = min(
                (r.get("donated_fraction") if r.get("donated_fraction") is not None else 0.0) for r in measured
            )
            d2h = sum(1 for r in measured if (r.get("device_to_host") or {}).get("transfers"))
            h2d = sum(1 for r in measured if (r.get("host_to_device") or {}).get("transfers"))
            warned = sum(1 for r in measured if any("donat" in w for w in r.get("warnings", [])))
            n = len(measured)
            rows.append(
                [
                    s["label"],
                    str(n),
                    f"{retrace} / {n}",
                    f"{donated:.2f}",
                    f"{d2h} / {n}",
                    f"{h2d} / {n}",
                    f"{warned} / {n}",
                ]
            )
        if not rows:
            return []
        return [
            "",
            "## Structure of a step",
            "",
            "JAX systems, over their measured cells: cells that traced or compiled during the timed steps; the "
            "smallest fraction of donated input buffers a step deleted (1.00: donation took effect everywhere); "
            "cells whose step made an implicit device-to-host transfer (a host sync) or host-to-device transfer "
            "(`jax.transfer_guard`); cells with a donation warning.",
            "",
            *table(
                ["System", "Cells", "Retraced", "Donated (min)", "Device→host", "Host→device", "Donation warnings"],
                rows,
                "lrrrrrr",
            ),
        ]

    def scaling(self) -> list[str]:
        systems = [s for s in self.systems if any(r["status"] != "n/a" for r in self.res.sweep(s["key"]))]
        if not systems:
            return []
        opt = self.opt_label(self.cfg["scaling_optimizer"])
        notes = Notes()
        counts = sorted({r["n_leaves"] for s in systems for r in self.res.sweep(s["key"])})
        header = ["Leaves", "Parameters"]
        for s in systems:
            header += [f"{s['label']} step (ms)", f"{s['label']} compile (s)"]
        rows = []
        for n in counts:
            params = next(r["n_params"] for s in systems for r in self.res.sweep(s["key"]) if r["n_leaves"] == n)
            row = [f"{n:,}", f"{params:,}"]
            for s in systems:
                r = next((r for r in self.res.sweep(s["key"]) if r["n_leaves"] == n), None)
                row += [
                    value_cell(r, notes, lambda r: f"{r['step_ms']:.2f}"),
                    value_cell(
                        r,
                        notes,
                        lambda r: f"{r['compile_s']:.2f}" + ("†" if r["compile_method"] == "first call" else ""),
                    ),
                ]
            rows.append(row)
        growth = ["growth exponent", ""]
        for s in systems:
            for key in ("step_ms", "compile_s"):
                seg = targets.growth_exponents(self.res.sweep(s["key"]), key)
                growth.append(", ".join(f"{e:.2f}" for _, _, e in seg) or "—")
        rows.append(growth)
        return [
            "",
            "## Scaling with the number of leaves",
            "",
            f"{opt} ({self.cfg['scaling_family']} family) on trees of N leaves of 500–5000 elements each "
            "(2000 leaves is the `many` workload). The growth exponent between consecutive points is "
            "log(t2/t1) / log(N2/N1): below 1 is sublinear.",
            "",
            f"![Compile and step time by number of leaves]({self.images['compile']})",
            "",
            *table(header, rows, "rr" + "r" * (2 * len(systems))),
            *notes.render(),
        ]

    def sparse(self) -> list[str]:
        data = self.raw.get("sparse")
        if not data:
            return []
        rows = [
            [
                f"{c['family']} {c['optimizer']}" + (f" `{c['kwargs']}`" if c["kwargs"] else ""),
                "rows only" if c["rows_only"] else "decays every row",
                f"{c['dense_ms']:.2f}",
                f"{c['sparse_ms']:.3f}",
                f"{c['speedup']:.1f}x",
            ]
            for c in data["cases"]
        ]
        return [
            "",
            "## Row-sparse gradients",
            "",
            f"A {data['rows']:,} x {data['width']} float32 embedding; each step's gradient touches "
            f"{data['touched']:,} rows (drawn with repeats). The same gradient applied dense and as "
            "`IndexedSlices`, each in a jitted step with table and state donated (median step). "
            "Optimizers whose Keras sparse path touches only the rows should be at least "
            f"{data['target_speedup']:.0f}x faster sparse; the others decay a slot on every row, "
            "as Keras does, and are shown for contrast.",
            "",
            *table(["optimizer", "Keras sparse path", "dense ms", "sparse ms", "speedup"], rows, "llrrr"),
        ]

    def render(self) -> str:
        lines: list[str] = []
        for section in (
            self.header,
            self.machine,
            self.method,
            self.targets,
            self.step_times,
            self.compile_times,
            self.memory,
            self.structure,
            self.scaling,
            self.sparse,
        ):
            lines += section()
        return "\n".join(lines) + "\n"


def write(results: dict, path: Path, image_names: dict[str, str]) -> None:
    """Writes the page for ``results`` to ``path``; ``image_names`` maps ``step``/``compile`` to PNG names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(Page(results, image_names).render())
