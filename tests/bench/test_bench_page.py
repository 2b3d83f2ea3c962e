"""``docs/performance.md`` is the page the report writes from ``benchmarks/results.json``.

The page and the raw results are written together by ``make bench``; a change
to the report's wording must regenerate the page from the same results
(``python -m benchmarks --report-only``), so the figures and verdicts on the
page are always those the recorded run measured.
"""

from __future__ import annotations

import json

from benchmarks import cli, report, targets
from benchmarks.config import FULL


def test_the_performance_page_is_the_report_of_the_recorded_results():
    results = json.loads(FULL.results_path.read_text())
    page = report.Page(results, {"step": cli.STEP_PNG, "compile": cli.COMPILE_PNG}).render()
    assert (FULL.out_dir / cli.PAGE).read_text() == page, "run `python -m benchmarks --report-only`"


def test_the_recorded_run_is_a_full_run_of_committed_code_over_every_configured_workload():
    results = json.loads(FULL.results_path.read_text())
    assert results["config"]["mode"] == "full"
    assert results["meta"]["git"]["dirty"] is False
    measured = {r["workload"] for r in results["records"] if targets.ok(r)}
    assert set(results["config"]["workloads"]) <= measured
    assert results["sparse"] is not None
