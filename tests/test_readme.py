"""The README's Results are the committed report's numbers, not numbers typed by hand."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _table_after(lines: list[str], start: int) -> list[str]:
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[first:end]


def test_readme_si_nli_table_is_the_committed_reports_ranked_table():
    readme = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    report = (REPO / "results" / "study" / "report" / "report.md").read_text(encoding="utf-8").splitlines()
    heading = readme.index("### SI-NLI: every method against full fine-tuning")
    ranked = next(i for i, line in enumerate(report) if line.startswith("e5-small-multilingual on si-nli, ranked"))
    readme_table, report_table = _table_after(readme, heading), _table_after(report, ranked)
    assert len(readme_table) > 3  # a header, its rule and rows
    assert readme_table == report_table, (
        "README.md's SI-NLI table differs from results/study/report/report.md's ranked SI-NLI table: "
        "regenerate the report (slopeft report --grid configs/grids/study.yaml --results results/study "
        "--out results/study/report) and copy its table into the README"
    )
