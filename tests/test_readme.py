"""The README's Results are the committed report's numbers, not numbers typed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _table_after(lines: list[str], start: int) -> list[str]:
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[first:end]


#: README heading → the caption of the report's ranked table that the README copies below it.
COPIED_TABLES = {
    "### SI-NLI: every method against full fine-tuning": "e5-small-multilingual on si-nli, ranked",
    "### RTE: every method against full fine-tuning (machine-translated validation)":
        "e5-small-multilingual on slo-superglue/rte (train machine, validation machine), ranked",
    "### Across tasks: which methods hold up against full fine-tuning":
        "e5-small-multilingual across tasks, against full fine-tuning",
}


@pytest.mark.parametrize("heading", COPIED_TABLES)
def test_readme_results_tables_are_the_committed_reports_ranked_tables(heading):
    readme = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    report = (REPO / "results" / "study" / "report" / "report.md").read_text(encoding="utf-8").splitlines()
    start = readme.index(heading)
    ranked = next(i for i, line in enumerate(report) if line.startswith(COPIED_TABLES[heading]))
    readme_table, report_table = _table_after(readme, start), _table_after(report, ranked)
    assert len(readme_table) > 3  # a header, its rule and rows
    assert readme_table == report_table, (
        f"README.md's table under {heading!r} differs from results/study/report/report.md's "
        f"{COPIED_TABLES[heading]!r} table: regenerate the report (slopeft report --grid "
        "configs/grids/study.yaml --results results/study --out results/study/report) and copy its table "
        "into the README"
    )
