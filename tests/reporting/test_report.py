"""`slopeft report` on the smoke grid: Markdown, a standalone HTML page, plots; the page in headless Chromium."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from slopeft.cli import main
from slopeft.experiments.store import ResultsStore
from slopeft.reporting.references import reference_points
from tests.experiments.smoke import SMOKE

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


@pytest.fixture(scope="module")
def report_dir(smoke_grid, tmp_path_factory, data_root) -> Path:
    out = tmp_path_factory.mktemp("report")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.setenv("SLOPEFT_DATA", str(data_root))
        mp.setenv("COLUMNS", "250")
        main(
            [
                "report",
                "--grid",
                str(SMOKE),
                "--grid-out",
                str(smoke_grid),
                "--out",
                str(out),
                "--draws",
                "100",
            ]
        )
    (out / "printed.txt").write_text(printed.getvalue())  # what the command showed in the terminal
    return out


def test_report_files(report_dir, smoke_grid):
    assert (report_dir / "report.md").is_file() and (report_dir / "report.html").is_file()
    for name in ("pareto", "methods", "curves", "costs"):
        png = report_dir / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        root = ET.parse(report_dir / "plots" / f"{name}.svg").getroot()
        assert root.tag.endswith("svg")
    markdown = (report_dir / "report.md").read_text()
    rows = ResultsStore(smoke_grid / "results.sqlite").rows()
    for task in {r["task"] for r in rows}:
        assert f"## Task {task}" in markdown
    for method in {r["method"] for r in rows}:
        assert f"| {method}" in markdown
    assert "](plots/pareto.png)" in markdown and "(plots/pareto.svg)" in markdown
    assert "## Published reference points" in markdown and "## SloBench SuperGLUE average" in markdown


def test_report_numbers(report_dir, smoke_grid):
    summary = json.loads((report_dir / "summary.json").read_text())
    rows = {r["run_id"]: r for r in ResultsStore(smoke_grid / "results.sqlite").rows()}
    assert {run for g in summary["groups"] for run in g["runs"]} == set(rows)
    for group in summary["groups"]:
        mains = [rows[run]["main"] for run in group["runs"]]
        assert group["mean"] == pytest.approx(sum(mains) / len(mains))
        assert group["seeds"] == len(mains) == (1 if group["kind"] == "baseline" else 2)
        low, high = group["ci"]
        assert low - 1e-9 <= group["mean"] <= high + 1e-9
        # degenerate ⇔ every saved validation prediction is the same label
        constant = [
            len(set(json.loads((Path(rows[run]["run_dir"]) / "val_predictions.json").read_text()).values()))
            == 1
            for run in group["runs"]
        ]
        assert group["degenerate_runs"] == sum(constant)
        if group["kind"] == "train":
            assert group["trainable"] > 0 and 0 < group["trainable_share"] <= 1 and group["train_seconds"] > 0
            assert group["best_method"] is not None
    majority = [g for g in summary["groups"] if g["method"] == "majority"]
    assert majority and all(g["degenerate_runs"] == 1 for g in majority)  # flagged in every table
    markdown = (report_dir / "report.md").read_text()
    assert "majority †" in markdown and "† degenerate 1/1" in markdown


def _markdown_tables_after(markdown: str, marker: str) -> list[list[list[str]]]:
    """The Markdown tables that follow each paragraph starting with ``marker``, as rows of cells."""
    tables = []
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(marker):
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([cell.strip() for cell in row.strip("|").split(" | ")])
            tables.append(rows)
    return tables


def test_ranked_table_orders_methods_and_lists_every_seed(report_dir, smoke_grid):
    markdown = (report_dir / "report.md").read_text()
    summary = json.loads((report_dir / "summary.json").read_text())
    rows = {r["run_id"]: r for r in ResultsStore(smoke_grid / "results.sqlite").rows()}
    for task in ("slo-superglue/cb", "slo-superglue/copa"):
        (table,) = _markdown_tables_after(markdown, f"tiny:bert on {task}, ranked")
        header, _, *body = table
        assert header[:4] == ["method", "seeds", header[2], "per seed"] and len(body) == len(
            [g for g in summary["groups"] if g["view"] == task]
        )
        groups = {g["method"]: g for g in summary["groups"] if g["view"] == task}
        methods = [cells[0].removesuffix(" †") for cells in body]
        assert methods[0] == "majority" and methods[1] == "full" and body[1][5] == "reference"
        means = [groups[m]["mean"] for m in methods[2:]]
        assert means == sorted(means, reverse=True)  # the rest from the highest mean down
        for cells, method in zip(body, methods, strict=True):
            group = groups[method]
            if group["kind"] != "train":
                continue
            by_seed = sorted((rows[run]["seed"], rows[run]["main"]) for run in group["runs"])
            assert cells[3] == ", ".join(f"{main:.3f}" for _, main in by_seed)
            if method != "full":
                test = group["vs_reference"]
                assert cells[5].startswith(f"{test['delta']:+.3f} [")


def test_across_tasks_table_restates_each_tasks_test_against_full_ft(report_dir):
    markdown = (report_dir / "report.md").read_text()
    printed = (report_dir / "printed.txt").read_text()
    assert "tiny:bert across tasks, against full fine-tuning" in printed
    summary = json.loads((report_dir / "summary.json").read_text())
    (table,) = _markdown_tables_after(markdown, "tiny:bert across tasks, against full fine-tuning")
    header, _, *body = table
    tasks = ["slo-superglue/cb", "slo-superglue/copa"]
    assert header == (
        ["method", "trainable share", "cb", "copa"] + ["tasks below full FT", "within noise", "above", "mean Δ"]
    )
    groups = {(g["view"], g["method"]): g for g in summary["groups"] if g["kind"] == "train"}
    assert {cells[0] for cells in body} == {method for _, method in groups}
    full = [groups[t, "full"] for t in tasks]
    assert body[0][0] == "full"
    assert body[0][2:4] == [f"{g['mean']:.3f}{' †' if g['degenerate_runs'] else ''} (reference)" for g in full]
    assert any("†" in cell for cells in body for cell in cells[2:4])  # the smoke grid's degenerate runs show
    for cells in body[1:]:
        tests = [groups[t, cells[0]]["vs_reference"] for t in tasks]
        for cell, task, test in zip(cells[2:4], tasks, tests, strict=True):
            separated = test["ci"][0] > 0 or test["ci"][1] < 0
            mark = "*" if separated else ""
            degenerate = " †" if groups[task, cells[0]]["degenerate_runs"] else ""  # the smoke grid has some
            assert cell == f"{groups[task, cells[0]]['mean']:.3f}{degenerate} ({test['delta']:+.3f}{mark})"
        below = sum(t["ci"][1] < 0 for t in tests)
        above = sum(t["ci"][0] > 0 for t in tests)
        assert cells[4:7] == [str(below), str(len(tasks) - below - above), str(above)]
        assert cells[7] == f"{sum(t['delta'] for t in tests) / len(tasks):+.3f}"
    ranks = [(-(int(c[5]) + int(c[6])), int(c[4]), -float(c[7])) for c in body[1:]]
    assert ranks == sorted(ranks)  # the methods not below full FT on most tasks first


def test_the_command_prints_each_ranked_table(report_dir):
    printed = (report_dir / "printed.txt").read_text()
    markdown = (report_dir / "report.md").read_text()
    for task in ("slo-superglue/cb", "slo-superglue/copa"):
        assert f"tiny:bert on {task}, ranked" in printed
        (table,) = _markdown_tables_after(markdown, f"tiny:bert on {task}, ranked")
        block = printed.split(f"tiny:bert on {task}, ranked", 1)[1]
        for cells in table[2:]:  # each row's method and its mean, as in the report
            line = next(line for line in block.splitlines() if line.startswith(f"│ {cells[0]} "))
            assert cells[2] in line and cells[3] in line
    assert printed.index("ranked") < printed.index("Wrote ")


def test_per_class_table_recounts_the_saved_predictions(report_dir, smoke_grid, data_root):
    from slopeft.tasks import get_task

    markdown = (report_dir / "report.md").read_text()
    summary = json.loads((report_dir / "summary.json").read_text())
    rows = {r["run_id"]: r for r in ResultsStore(smoke_grid / "results.sqlite").rows()}
    task = get_task("slo-superglue/cb", str(data_root))
    (table,) = _markdown_tables_after(markdown, "tiny:bert on slo-superglue/cb, per class")
    header, _, *body = table
    labels = [str(label) for label in task.spec.labels]
    assert header == ["method", "seeds", *(f"recall {x}" for x in labels), *(f"predicted {x}" for x in labels),
                      "never predicted"]
    groups = {g["method"]: g for g in summary["groups"] if g["view"] == "slo-superglue/cb"}
    gold = {e.idx: e.label for e in task.examples("val")}
    for cells in body:
        group = groups[cells[0].removesuffix(" †")]
        pooled = [(gold[int(i)], p) for run in group["runs"]
                  for i, p in json.loads((Path(rows[run]["run_dir"]) / "val_predictions.json").read_text()).items()]
        for position, label in enumerate(task.spec.labels):
            of_label = [p for g, p in pooled if g == label]
            recall = group["per_class"]["recall"][position]
            assert recall == (pytest.approx(of_label.count(label) / len(of_label)) if of_label else None)
            assert cells[2 + position] == ("—" if recall is None else f"{recall:.3f}")
            assert group["per_class"]["predicted"][position] == pytest.approx(
                sum(p == label for _, p in pooled) / len(pooled))


def test_a_run_whose_saved_predictions_cannot_be_scored_is_flagged_and_the_rest_reported(
    smoke_grid, data_root, tmp_path
):
    from slopeft.reporting.results import summarise

    rows = ResultsStore(smoke_grid / "results.sqlite").rows()
    bad = next(r for r in rows if r["task"] == "slo-superglue/cb" and r["method"] == "lora" and r["seed"] == 1)
    predictions = json.loads((Path(bad["run_dir"]) / "val_predictions.json").read_text())
    predictions[next(iter(predictions))] = "maybe"  # a label CB does not have
    (tmp_path / "val_predictions.json").write_text(json.dumps(predictions))
    rows = [{**r, "run_dir": str(tmp_path)} if r is bad else r for r in rows]
    results = summarise(rows, "smoke", data_dir=str(data_root), draws=20)
    groups = {g.method: g for g in results.by_task("slo-superglue/cb")}
    lora = groups["lora"]
    assert lora.ci is None and lora.classes is None and lora.vs_reference is None
    assert any("not scorable" in note and "maybe" in note for note in lora.notes)
    assert groups["full"].ci is not None and groups["bitfit"].vs_reference is not None  # the rest as before


def test_a_seed_that_never_predicts_some_classes_is_flagged_but_a_degenerate_one_only_once():
    from slopeft.reporting.report import _flags
    from slopeft.reporting.results import Group
    from slopeft.reporting.stats import ClassBreakdown

    labels = ("entailment", "neutral", "contradiction")
    group = Group(task="si-nli", model="e5", method="prefix-tuning", kind="train", runs=[], main_metric="accuracy",
                  mean=0.43, std=None)
    group.classes = ClassBreakdown(labels, (0.1, 0.6, 0.6), (0.1, 0.5, 0.4),
                                   {1: ("entailment",), 2: ("entailment", "neutral")})
    flags = _flags(group)
    assert "seed 1 predicts no entailment" in flags
    assert "seed 2" not in flags  # one class left: the degenerate flag's case, not said twice


def test_reference_points_ship_with_their_sources():
    points = reference_points()
    assert {p.board for p in points} == {"SI-NLI", "SLO→ENG", "SloBench SuperGLUE"}
    assert all(p.source for p in points)
    cb = {p.metric: p.value for p in points if p.task == "slo-superglue/cb"}
    assert cb == {"accuracy": 0.5, "macro_f1": 0.222}


def test_majority_reference_points_reproduce(tmp_path, real_data_env):
    """The slobench.md majority row is what our majority baseline computes on the full validation sets."""
    from slopeft.experiments.grid import expand, grid_from_dict
    from slopeft.experiments.runner import job_for, prepare
    from slopeft.experiments.worker import execute

    grid = grid_from_dict({"tasks": ["slo-superglue"], "baselines": ["majority"]}, default_name="majority")
    grid.out = tmp_path
    expansion = expand(grid)
    prepare(grid, expansion)
    scores = {}
    for run in expansion.runs:
        assert execute(job_for(grid, run)) == 0
        scores[run.task] = json.loads((tmp_path / "runs" / run.run_id / "record.json").read_text())[
            "metrics"
        ]["val"]
    for point in reference_points():
        if point.system.startswith("majority"):
            assert scores[point.task][point.metric] == pytest.approx(point.value, abs=5e-4)

    # All six tasks: the SloBench SuperGLUE average (CB and MultiRC entering as their averages).
    from slopeft.reporting.results import summarise

    results = summarise(ResultsStore(tmp_path / "results.sqlite").rows(), "majority", draws=50)
    (average,) = results.averages
    parts = [scores[t]["average" if t.endswith(("cb", "multirc")) else "accuracy"] for t in scores]
    assert (average.model, average.method, average.seeds) == ("baseline", "majority", 1)
    assert average.mean == pytest.approx(sum(parts) / 6) == pytest.approx(0.4397, abs=5e-4)
    assert average.low <= average.mean <= average.high and average.degenerate_runs == 6


def _console_messages(stderr: str) -> list[str]:
    # Chromium logs every console message and uncaught error of the page as INFO:CONSOLE.
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def _chromium(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (install it: apt-get install -y chromium)"
)
def test_html_renders_in_headless_chromium_without_console_errors(report_dir, tmp_path):
    page = report_dir / "report.html"
    html = page.read_text()
    # standalone: no script, no external reference (plots are embedded SVG data)
    assert "<script" not in html
    assert not re.search(r'(src|href)="(?!data:)', html)

    # The check itself catches errors: a page with a console error and an uncaught exception.
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><body><script>console.error("boom"); missing_fn();</script></body></html>'
    )
    caught = _console_messages(_chromium(bad, tmp_path / "profile-bad", "--dump-dom").stderr)
    assert any("boom" in m for m in caught) and any("Uncaught ReferenceError" in m for m in caught)

    shown = _chromium(page, tmp_path / "profile", "--dump-dom")
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert _console_messages(shown.stderr) == []
    dom = shown.stdout
    assert dom.count("<table") >= 3 and "slopeft report" in dom and dom.count("<figure") == 4  # pareto, methods, curves, costs

    # Every embedded plot decodes as an image: probe a copy of the page with a script of our own.
    probe = tmp_path / "probe.html"
    probe.write_text(
        html.replace(
            "</body>",
            "<script>window.addEventListener('load', () => { document.body.dataset.images = "
            "[...document.images].map(i => i.complete && i.naturalWidth > 0).join(','); });</script></body>",
        )
    )
    probed = _chromium(probe, tmp_path / "profile-probe", "--virtual-time-budget=5000", "--dump-dom")
    assert _console_messages(probed.stderr) == []
    assert 'data-images="true,true,true,true"' in probed.stdout
    for svg in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html):
        assert ET.fromstring(base64.b64decode(svg)).tag.endswith("svg")


def test_the_learning_curves_are_also_a_table_in_ranked_order():
    from slopeft.reporting.plots import curve_panels
    from slopeft.reporting.report import curve_table
    from tests.reporting.test_plots import _curve_group, _evaluated, _results

    full = _curve_group("full", [_evaluated("full", 1, [(247, 1.0, 0.40), (494, 2.0, 0.45)])])
    lora = _curve_group("lora", [_evaluated("lora", 1, [(247, 1.0, 0.44), (494, 2.0, 0.52), (741, 3.0, 0.54)]),
                                 _evaluated("lora", 2, [(247, 1.0, 0.46), (494, 2.0, 0.50), (741, 3.0, 0.56)])])
    once = _curve_group("bitfit", [_evaluated("bitfit", 1, [(741, 3.0, 0.6)])])  # scored once: no row
    for group in (full, lora, once):
        group.reference_method = "full"  # what summarise() sets: the methods are tested against full FT
    results = _results([lora, full, once])
    table = curve_table(curve_panels(results)["si-nli"], results.by_task("si-nli"), "e5")
    assert table.columns == ["method", "seeds", "epoch 1", "epoch 2", "epoch 3"]
    # Full fine-tuning first (the ranked order), then the methods; an epoch a system lacks is "—".
    assert table.rows == [["full", "1", "0.400", "0.450", "—"], ["lora", "2", "0.450", "0.510", "0.550"]]
    assert curve_table([], results.by_task("si-nli"), "e5") is None
