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


def ratio_cell(a: Record | None, b: Record | None, field: str = "step_ms") -> str:
    if not (ok(a) and ok(b)):
        return "—"
    assert a is not None and b is not None
    x, y = a.get(field), b.get(field)
    return f"{x / y:.2f}" if x and y else "—"


def seconds(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def compile_text(r: Record) -> str:
    return f"{r['compile_s']:.2f}" + ("†" if r["compile_method"] == "first call" else "")


def first_step_text(r: Record) -> str:
    total = r.get("time_to_first_step_s")
    return "—" if total is None else f"{total:.2f}" + ("†" if r["compile_method"] == "first call" else "")


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
    def per_workload(self, tables: Callable[[str, Notes], list[str]]) -> list[str]:
        """One heading per matrix workload, its tables, and their footnotes."""
        lines = []
        for w in self.res.matrix_workloads():
            notes = Notes()
            lines += ["", self.workload_heading(w), "", *tables(w, notes), *notes.render()]
        return lines

    def cell_table(
        self,
        workload: str,
        notes: Notes,
        unit: str,
        fmt: Callable[[Record], str],
        extra: tuple[str, Callable[[str, str], str]] | None = None,
    ) -> list[str]:
        """Optimizer x family rows, one column per system (``fmt`` of its record), and an ``extra`` column."""
        header = ["Optimizer (k slots)", "Family"] + [f"{s['label']}{unit}" for s in self.systems]
        rows = []
        for opt, fam in self.res.rows(workload):
            cells = [value_cell(self.res.get(workload, opt, fam, s["key"]), notes, fmt) for s in self.systems]
            rows.append([self.row_label(opt), fam] + cells + ([extra[1](opt, fam)] if extra else []))
        header += [extra[0]] if extra else []
        return table(header, rows, "ll" + "r" * (len(header) - 2))

    def ratio_table(self, workload: str, pairs: Sequence[tuple[dict, dict]], field: str, what: str) -> list[str]:
        """Optimizer x family rows, one column per (numerator, denominator) system pair."""
        if not pairs:
            return []
        header = ["Optimizer (k slots)", "Family"] + [f"{a['label']} / {b['label']}" for a, b in pairs]
        rows = []
        for opt, fam in self.res.rows(workload):
            cell = {s["key"]: self.res.get(workload, opt, fam, s["key"]) for s in self.systems}
            rows.append(
                [self.row_label(opt), fam] + [ratio_cell(cell[a["key"]], cell[b["key"]], field) for a, b in pairs]
            )
        return ["", f"Ratios ({what} of the first / the second):", "", *table(header, rows, "ll" + "r" * len(pairs))]

    def opt_label(self, key: str) -> str:
        return self.optimizers.get(key, {}).get("label", key)

    def row_label(self, key: str) -> str:
        """The optimizer and its number of slots, for the first column of the tables."""
        slots = self.optimizers.get(key, {}).get("slots")
        return self.opt_label(key) + ("" if slots is None else f" ({slots})")

    def workload_heading(self, key: str) -> str:
        w = self.workloads[key]
        leaves = "1 leaf" if w["n_leaves"] == 1 else f"{w['n_leaves']:,} leaves"
        return f"### `{key}`: {w['description']} ({leaves}, {w['n_params']:,} parameters, {w['bytes'] / MiB:.1f} MiB)"

    def ratio_pairs(self) -> list[tuple[dict, dict]]:
        """(numerator, denominator) system pairs of the step-time ratio tables."""
        ours = [s for s in self.systems if s["role"] == "ours"]
        layers = [s for s in self.systems if s["role"] == "layer"]
        peers = [s for s in self.systems if s["role"] == "peer"]
        return [(a, p) for a in ours + layers for p in peers] + [(lay, o) for lay in layers for o in ours]

    def optax_pairs(self) -> list[tuple[dict, dict]]:
        """Every other system against optax (the first-step ratio tables)."""
        optax = [s for s in self.systems if s["key"] == "optax"]
        return [(s, o) for o in optax for s in self.systems if s is not o]

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
            "Regenerate with `make bench` (one to two hours, most of it compiling per-leaf programs for the "
            "trees of many leaves; `make bench-quick` for a few-minute check that writes to `build/bench-quick/`).",
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
            "Each system runs one optimizer step per call, each cell in a fresh worker process, one after "
            "another, under the same conditions: jitted (`tf.function` for TF-Keras), the parameters' and the "
            "state's buffers donated where the system allows it, the inputs placed on the device "
            "before timing, each step blocked on until its result is ready (`jax.block_until_ready`). "
            f"After the compile and {c['warmup']} warm-up steps (the first step included), {c['repeats']} steps "
            f"are timed ({c['scaling_repeats']} per scaling point"
            + (
                f"; fewer, but at least 10, where they would take longer than {c['timed_budget_s']:.0f} s"
                if "timed_budget_s" in c
                else ""
            )
            + ") and the median is reported. "
            + self.step_runs()
            + "The same gradient is applied at every step.",
            "",
            "Systems:",
            "",
        ]
        lines += [f"- **{s['label']}** (`{s['key']}`, {s['role']}): {s['description']}." for s in self.systems]
        for w in self.workloads.values():
            if w.get("slot_dtype") and w["key"] in self.res.matrix_workloads():
                lines += [
                    "",
                    f"Slots on `{w['key']}` ({w['dtype']} parameters; {w['slot_dtype']} slots asked for where the "
                    "system lets one choose):",
                    "",
                    *[f"- **{s['label']}**: {s.get('slots') or 'not recorded'}." for s in self.systems],
                ]
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
            "- *Fastest (GB/s)*: the least memory traffic of a step, 3 x the parameters' bytes + 2 x the "
            "state's (read params, grads and slots; write params and slots), divided by the fastest system's "
            "step time: how close that system comes to the machine's memory bandwidth.",
            "- *Time to the first step*: building the state + trace + lower + XLA compile + the first step, in a "
            "fresh process; for the Keras layer and TF-Keras the build and the first call (trace, compile and one "
            "step).",
            "- *Compile time*: for jitted functions the wall time of `trace(...).lower().compile()`; for the "
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
            f"{c['deadline_s'] / 60:.0f} minutes.",
        ]
        cells = c.get("leaf_tree_cells")
        if cells:
            per_system = "; ".join(
                f"{k}: {', '.join(v) if '*' not in v else 'every optimizer'}" for k, v in cells.items()
            )
            lines.append(
                "- *Trees of many leaves* (`leaves-N`, `many`): per-leaf programs over thousands of distinct "
                "shapes take one to three minutes to compile, so each system runs only some optimizers there "
                f"({per_system}), with a compile budget of {c['leaf_tree_compile_budget_s']:.0f} s and "
                f"{c['leaf_tree_group_budget_s']:.0f} s of compiles per system and workload.",
            )
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
        def tables(w: str, notes: Notes) -> list[str]:
            bandwidth = ("Fastest (GB/s)", lambda opt, fam: self.bandwidth(w, opt, fam))
            step = self.cell_table(w, notes, " (ms)", lambda r: f"{r['step_ms']:.2f}", bandwidth)
            return step + self.ratio_table(w, self.ratio_pairs(), "step_ms", "step time")

        return ["", "## Step time", "", f"![Step time by workload and system]({self.images['step']})"] + (
            self.per_workload(tables)
        )

    def bandwidth(self, workload: str, optimizer: str, family: str) -> str:
        """The fastest system's effective bandwidth: minimum traffic / its step time.

        A step reads params, grads and the slots and writes params and the
        slots: 3 x the params' bytes + 2 x the state's at the least.
        """
        measured = [r for s in self.systems if ok(r := self.res.get(workload, optimizer, family, s["key"]))]
        if not measured:
            return "—"
        best = min(measured, key=lambda r: r["step_ms"])
        traffic = 3 * best["params_bytes"] + 2 * best["state_array_bytes"]
        return f"{traffic / best['step_ms'] / 1e6:.1f} ({self.res.label(best['system'])})"

    def first_step(self) -> list[str]:
        def tables(w: str, notes: Notes) -> list[str]:
            total = self.cell_table(w, notes, " (s)", first_step_text)
            return total + self.ratio_table(w, self.optax_pairs(), "time_to_first_step_s", "time to the first step")

        return [
            "",
            "## Time to the first step",
            "",
            "Seconds from the parameters on the device to the first updated parameters, each cell in a fresh "
            "process (no compile cache warm; JAX's persistent compilation cache shortens every run after the "
            "first, for every JAX system: [fast paths](fast_paths.md#where-the-compile-goes-and-compiling-once)): "
            "building the optimizer state (eager `init`, `optimizer.build`), "
            "tracing, lowering and compiling the step, and running it once; † marks a first call timed whole "
            "(the Keras layer and TF-Keras; TF-Keras builds its slots inside it). " + self.first_step_runs() + " The "
            "phases are in [Time to the first step, phase by phase](#time-to-the-first-step-phase-by-phase).",
            *self.per_workload(tables),
        ]

    def first_step_runs(self) -> str:
        runs = self.cfg.get("first_step_runs", 1)
        if runs < 2:
            return "Each cell was measured once."
        return (
            f"Where the total came under {self.cfg['first_step_rerun_max_s']:.0f} s the cell was measured {runs} "
            "times, each in a fresh process, and the fastest is shown."
        )

    def step_runs(self) -> str:
        runs = self.cfg.get("step_runs", 1)
        if runs < 2:
            return ""
        return (
            f"On the workloads of the main matrix, a cell whose time to the first step came under "
            f"{self.cfg['first_step_rerun_max_s']:.0f} s was timed in {runs} fresh processes, every system alike, and "
            "the lowest of their medians is shown: the same program's median step moves from one process to the "
            "next by up to 15%, and on the one large tensor by up to 70% (Adam's step on 2**24 float32 parameters, "
            "jaxopt_keras and optax alike: 8.6 to 14.6 ms in 24 processes, most of them at 11.5 to 13.2 ms, a few "
            "near 9), more than many of the differences the targets judge. "
        )

    def compile_times(self) -> list[str]:
        lines = [
            "",
            "## Compile time",
            "",
            "Seconds of trace + lower + XLA compile; † marks a first-call time (trace, compile and one step).",
        ]
        return lines + self.per_workload(lambda w, notes: self.cell_table(w, notes, " (s)", compile_text))

    def memory(self) -> list[str]:
        lines = [
            "",
            "## Memory",
            "",
            "Per cell: optimizer state / params (bytes; float32 slots over bfloat16 params count 2 per slot) · "
            "process peak RSS (above the RSS at the measurement's start) · extra RSS during the timed steps. MiB.",
        ]

        def fmt(r: Record) -> str:
            state = r["state_array_bytes"] / r["params_bytes"]
            peak = r["rss_peak"] / MiB
            delta = (r["rss_peak"] - r["rss_start"]) / MiB
            return f"{state:.2f}× · {peak:,.0f} (+{delta:,.0f}) · +{steady_extra(r) / MiB:,.0f}"

        return lines + self.per_workload(lambda w, notes: self.cell_table(w, notes, "", fmt))

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
                row += [value_cell(r, notes, lambda r: f"{r['step_ms']:.2f}"), value_cell(r, notes, compile_text)]
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

    def first_step_phases(self) -> list[str]:
        phases = [
            ("init", "init_s"),
            ("trace", "trace_s"),
            ("lower", "lower_s"),
            ("XLA compile", "backend_compile_s"),
            ("first step", "first_step_s"),
        ]

        def tables(w: str, notes: Notes) -> list[str]:
            rows = []
            for opt, fam in self.res.rows(w):
                for s in self.systems:
                    r = self.res.get(w, opt, fam, s["key"])
                    if not ok(r):
                        continue
                    assert r is not None
                    first_call = r["compile_method"] == "first call"
                    times = [seconds(r.get(k)) for _, k in phases]
                    if first_call:  # trace, compile and the step are one call
                        times[1:] = ["", "", f"{r['compile_s']:.2f}†", ""]
                    runs = ", ".join(f"{x:.2f}" for x in r.get("first_step_runs_s", []))
                    compiles = r.get("init_compiles")
                    row = [self.row_label(opt), fam, s["label"], *times, first_step_text(r), runs]
                    rows.append(row + [seconds(r.get("jit_init_s")), "—" if compiles is None else str(compiles)])
            header = ["Optimizer (k slots)", "Family", "System", *(f"{name} (s)" for name, _ in phases)]
            header += ["total (s)", "runs (s)", "jit(init) (s)", "XLA compiles in init"]
            return table(header, rows, "lll" + "r" * (len(header) - 3))

        return [
            "",
            "## Time to the first step, phase by phase",
            "",
            "Seconds of each phase, in the run kept (the fastest of *runs*); † the first call timed whole (it "
            "traces, compiles and runs the step; TF-Keras also builds its slots in it). *jit(init)*: the first "
            "call of `jax.jit(init)` on the placed parameters, in a fresh process of its own"
            + (
                f" (the fastest of {self.cfg['step_runs']} such processes)"
                if self.cfg.get("step_runs", 1) > 1
                else ""
            )
            + ". *XLA compiles in "
            "init*: the programs XLA compiled while the state was built (eager init compiles one per distinct "
            "shape and operation where it builds the state on the device).",
            *self.per_workload(tables),
        ]

    def render(self) -> str:
        lines: list[str] = []
        for section in (
            self.header,
            self.machine,
            self.method,
            self.targets,
            self.step_times,
            self.first_step,
            self.compile_times,
            self.memory,
            self.structure,
            self.scaling,
            self.sparse,
            self.first_step_phases,
        ):
            lines += section()
        return "\n".join(lines) + "\n"


def write(results: dict, path: Path, image_names: dict[str, str]) -> None:
    """Writes the page for ``results`` to ``path``; ``image_names`` maps ``step``/``compile`` to PNG names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(Page(results, image_names).render())
