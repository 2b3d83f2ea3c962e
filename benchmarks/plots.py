"""The PNG plots beside the page: step time by workload and system, and the scaling sweep."""

from __future__ import annotations

from pathlib import Path

from benchmarks.targets import Results, ok

# One colour per system, in registration order (matplotlib's tab10).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(results: dict) -> dict[str, str]:
    return {s["key"]: PALETTE[i % len(PALETTE)] for i, s in enumerate(results["systems"])}


def step_time(results: dict, path: Path) -> None:
    """Grouped bars: one panel per workload, one group per optimizer/family, one bar per system."""
    plt = _pyplot()
    res = Results(results)
    colors = _colors(results)
    workloads = [w for w in res.matrix_workloads() if res.rows(w)]
    present = {r["system"] for r in res.records if ok(r)}
    systems = [s for s in results["systems"] if s["key"] in present]
    if not workloads or not systems:
        return
    fig, axes = plt.subplots(len(workloads), 1, figsize=(12, 3.8 * len(workloads)), squeeze=False)
    for ax, w in zip(axes[:, 0], workloads):
        cells = res.rows(w)
        top = max((r["step_ms"] for r in res.records if r["workload"] == w and ok(r)), default=1.0)
        for i, (opt, fam) in enumerate(cells):
            # The systems that apply to this cell, side by side around its tick.
            entries = [(s, res.get(w, opt, fam, s["key"])) for s in systems]
            entries = [(s, r) for s, r in entries if r is not None and r["status"] != "n/a"]
            width = 0.8 / max(1, len(entries))
            for j, (s, r) in enumerate(entries):
                x = i - 0.4 + width * (j + 0.5)
                color = colors[s["key"]]
                if ok(r):
                    ax.bar([x], [r["step_ms"]], width=width, color=color)
                    ax.text(
                        x,
                        r["step_ms"] + 0.01 * top,
                        f"{r['step_ms']:.3g}",
                        ha="center",
                        va="bottom",
                        fontsize=6,
                        rotation=90,
                    )
                else:  # compile over budget, skipped or failed: a cross on the axis
                    ax.plot([x], [0], marker="x", color=color, markersize=7, clip_on=False)
        wl = next(x for x in results["workloads"] if x["key"] == w)
        leaves = f"{wl['n_leaves']:,} leaf" if wl["n_leaves"] == 1 else f"{wl['n_leaves']:,} leaves"
        ax.set_title(f"{w}: {leaves}, {wl['n_params'] / 1e6:.1f}M parameters", loc="left", fontsize=10)
        ax.set_xticks(range(len(cells)))
        ax.set_xticklabels([f"{opt}\n{fam}" for opt, fam in cells], fontsize=8)
        ax.set_xlim(-0.5, len(cells) - 0.5)
        ax.set_ylim(0, top * 1.18)
        ax.set_ylabel("step time (ms, median)")
        ax.grid(axis="y", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[s["key"]]) for s in systems]
    fig.legend(handles, [s["label"] for s in systems], loc="upper center", ncol=len(systems), fontsize=8, frameon=False)
    fig.text(
        0.99,
        0.005,
        "×: not measured (compile over budget, skipped or failed); systems that do not apply are left out",
        ha="right",
        va="bottom",
        fontsize=7,
        color="0.4",
    )
    fig.tight_layout(rect=(0, 0.015, 1, 1 - 0.4 / (3.8 * len(workloads))))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scaling(results: dict, path: Path) -> None:
    """Log-log lines: compile time (left) and step time (right) against the number of leaves."""
    plt = _pyplot()
    res = Results(results)
    colors = _colors(results)
    budget = results["config"]["compile_budget_s"]
    fig, (ax_c, ax_s) = plt.subplots(1, 2, figsize=(12, 4.4))
    drawn = False
    for s in results["systems"]:
        points = res.sweep(s["key"])
        good = [r for r in points if ok(r)]
        over = [r for r in points if r["status"] == "timeout" and r.get("phase") == "compile"]
        if not good and not over:
            continue
        drawn = True
        color = colors[s["key"]]
        ax_c.plot([r["n_leaves"] for r in good], [r["compile_s"] for r in good], "o-", color=color, label=s["label"])
        ax_s.plot([r["n_leaves"] for r in good], [r["step_ms"] for r in good], "o-", color=color, label=s["label"])
        if over:
            ax_c.plot(
                [r["n_leaves"] for r in over],
                [r["budget_s"] for r in over],
                "^",
                color=color,
                markersize=9,
                markerfacecolor="none",
            )
    if not drawn:
        plt.close(fig)
        return
    from matplotlib.ticker import FuncFormatter, NullFormatter

    counts = sorted({r["n_leaves"] for s in results["systems"] for r in res.sweep(s["key"])})
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for ax, label in ((ax_c, "compile time (s)"), (ax_s, "step time (ms, median)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(counts)
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(plain)
        ax.set_xlim(counts[0] / 1.5, counts[-1] * 1.5)
        ax.set_xlabel("number of leaves (500–5000 elements each)")
        ax.set_ylabel(label)
        ax.grid(which="both", alpha=0.3)
    ax_c.axhline(budget, color="0.5", linestyle=":", linewidth=1)
    ax_c.set_ylim(
        min([0.5] + [r["compile_s"] for s in results["systems"] for r in res.sweep(s["key"]) if ok(r)]) / 1.5,
        budget * 2,
    )
    ax_c.text(
        counts[0] / 1.4,
        budget * 1.05,
        f"compile budget {budget:.0f} s (△: over it)",
        va="bottom",
        fontsize=7,
        color="0.4",
    )
    ax_c.set_title("Compile time by number of leaves", fontsize=10)
    ax_s.set_title("Step time by number of leaves", fontsize=10)
    ax_s.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
