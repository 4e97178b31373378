"""The grid report: one document model rendered as Markdown and as a standalone HTML page.

``build_report`` reads a grid's results store, summarises it (:mod:`slopeft.reporting.results`),
draws the plots (:mod:`slopeft.reporting.plots`) and writes into the output folder::

    report.md      Markdown (plots linked as PNG)
    report.html    one self-contained page: CSS inline, plots embedded as SVG data URIs, no scripts
    plots/*.png, plots/*.svg
    summary.json   the table numbers, for other tools
"""

from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slopeft.reporting.plots import Curve, Plot, curve_panels, make_plots
from slopeft.reporting.references import compare_with_references
from slopeft.reporting.results import Group, Results, summarise
from slopeft.reporting.stats import DEFAULT_DRAWS, TRANSLATION_DRAWS
from slopeft.tasks import TASK_GROUPS, TaskGroup

DEGENERATE_MARK = "†"


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Section:
    title: str
    blocks: list[Any] = field(default_factory=list)  # str (paragraph) | Table | Plot


@dataclass
class ReportFiles:
    markdown: Path
    html: Path
    plots: list[Plot]
    summary: Path
    ranked: list[tuple[str, Table]] = field(default_factory=list)  # (title, table): what the CLI prints


# -- formatting ---------------------------------------------------------------------------------
def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _score(group: Group) -> str:
    text = _num(group.mean)
    return text if group.std is None else f"{text} ± {_num(group.std)}"


def _seed_ci(group: Group) -> str:
    interval = group.seed_interval
    return "—" if interval is None else f"[{_num(interval[0])}, {_num(interval[1])}]"


def _ci(group: Group) -> str:
    if group.ci is None or group.main_metric not in group.ci.low:
        return "—"
    return f"[{_num(group.ci.low[group.main_metric])}, {_num(group.ci.high[group.main_metric])}]"


def _vs_best(group: Group) -> str:
    if group.kind != "train":
        return ""
    if group.best_method == group.method:
        return "best"
    if group.vs_best is None:
        return "—"
    return _test(group.vs_best)


def _vs_reference(group: Group) -> str:
    if group.kind != "train" or group.reference_method is None:
        return ""
    return "—" if group.vs_reference is None else _test(group.vs_reference)


def _test(t) -> str:
    seeds = f" (seed{'s' if len(t.seeds) > 1 else ''} {', '.join(map(str, t.seeds))})" if t.seeds else ""
    return f"{t.delta:+.3f} [{t.low:+.3f}, {t.high:+.3f}], p={t.p_value:.3f}{seeds}"


def _count(value: float | None) -> str:
    if value is None:
        return "—"
    value = int(round(value))
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value:,}"


def _flags(group: Group) -> str:
    flags = []
    if group.degenerate_runs:
        flags.append(f"{DEGENERATE_MARK} degenerate {group.degenerate_runs}/{group.seeds}")
    unknown = sum(r.degenerate is None for r in group.runs)
    if unknown:
        flags.append(f"no predictions saved for {unknown}")
    if group.classes is not None:
        for seed, missing in sorted(group.classes.never_predicted.items()):
            if len(missing) < len(group.classes.labels) - 1:  # one class left is a degenerate run, flagged above
                flags.append(f"seed {seed} predicts no {', '.join(map(str, missing))}")
    precisions = sorted({r.record.precision for r in group.runs if r.kind == "train"})
    if precisions and precisions != ["fp32"]:
        flags.append(f"trained in {' and '.join(precisions)}{' (seeds differ)' if len(precisions) > 1 else ''}")
    flags += group.notes
    return "; ".join(flags)


def _mark(name: str, degenerate: int) -> str:
    return f"{name} {DEGENERATE_MARK}" if degenerate else name


# -- the document -------------------------------------------------------------------------------
def task_table(groups: list[Group]) -> Table:
    rows = []
    for g in groups:
        share = g.cost("trainable_share")
        adapter = g.cost("adapter_bytes")
        rows.append(
            [
                g.model,
                _mark(g.method, g.degenerate_runs),
                str(g.seeds),
                _score(g),
                _seed_ci(g),
                _ci(g),
                _vs_best(g),
                _vs_reference(g),
                _count(g.cost("trainable")),
                "—" if share is None else f"{share:.3%}",
                "—" if adapter is None else f"{adapter / 2**20:.2f}",
                _num(g.cost("train_seconds"), 1),
                _num(g.cost("train_cpu_seconds"), 0),
                _num(g.cost("peak_rss_mb", "max"), 0),
                _flags(g),
            ]
        )
    metric = groups[0].main_metric if groups else "score"
    return Table(
        [
            "model",
            "method",
            "seeds",
            f"{metric} (mean ± std)",
            "95% CI over seeds",
            "95% CI bootstrap",
            "Δ vs best [95% CI], p",
            "Δ vs full FT [95% CI], p",
            "trainable",
            "share of base",
            "adapter MB",
            "train s",
            "train CPU s",
            "peak RSS MB",
            "flags",
        ],
        rows,
    )


def ranked_table(groups: list[Group], model: str) -> Table:
    """One model's methods on one task view, the way a reader compares them: the baselines, the
    reference (full fine-tuning), then every other method from the highest mean to the lowest, with
    each seed's score beside the mean and only the columns that decide between methods (the README's
    Results table is this table, copied)."""
    reference = _reference_methods(groups, model)
    rows = []
    for g in _ranked(groups, model):
        share = g.cost("trainable_share")
        adapter = g.cost("adapter_bytes")
        seeds = sorted(g.runs, key=lambda r: r.seed)
        rows.append(
            [
                _mark(g.method, g.degenerate_runs),
                str(g.seeds),
                _score(g),
                ", ".join(_num(r.main) for r in seeds) if g.kind == "train" else "—",
                _seed_ci(g),
                (_vs_reference(g) or "—") if g.method not in reference else "reference",
                "—" if share is None else f"{share:.3%}" if g.kind == "train" else "0",
                "—" if adapter is None else f"{adapter / 2**20:.2f}",
                _num(g.cost("train_cpu_seconds"), 0),
                _num(g.cost("peak_rss_mb", "max"), 0),
            ]
        )
    metric = groups[0].main_metric if groups else "score"
    return Table(
        [
            "method",
            "seeds",
            f"{metric}, mean ± std",
            "per seed",
            "95% CI over seeds",
            "Δ vs full FT [95% CI], p",
            "trainable share",
            "adapter MB",
            "train CPU s",
            "peak RSS MB",
        ],
        rows,
    )


def _ranked(groups: list[Group], model: str) -> list[Group]:
    """The baselines (of no model or of ``model``), full fine-tuning, then ``model``'s other methods
    from the highest mean to the lowest: the order of the ranked and per-class tables."""
    baselines = sorted(
        (g for g in groups if g.kind != "train" and g.model in ("baseline", model)), key=lambda g: -g.mean
    )
    trained = [g for g in groups if g.kind == "train" and g.model == model]
    reference = _reference_methods(groups, model)
    return baselines + sorted(trained, key=lambda g: (g.method not in reference, -g.mean))


def _reference_methods(groups: list[Group], model: str) -> set[str]:
    """The label ``model``'s methods were tested against (``full``; in a sweep its best setting)."""
    return {g.reference_method for g in groups if g.kind == "train" and g.model == model} - {None}


def _trained_models(groups: list[Group]) -> list[str]:
    return sorted({g.model for g in groups if g.kind == "train"})


def ranked_tables(results: Results) -> list[tuple[str, Table]]:
    """``("MODEL on TASK, ranked", ranked table)`` for every task view and model with a trained run."""
    return [
        (f"{model} on {task}, ranked", ranked_table(results.by_task(task), model))
        for task in results.tasks()
        for model in _trained_models(results.by_task(task))
    ]


def across_tasks_table(results: Results, model: str) -> Table | None:
    """``model``'s methods on every task view where it has a reference (full fine-tuning): each cell
    the method's mean and its paired difference to full FT, marked where the 95% interval of the
    difference excludes 0; then how many tasks put the method below, within noise of, and above
    full FT. The question a reader brings ("which method works across Slovene tasks?") in one table;
    None where fewer than two tasks have a reference."""
    views = []
    for view in results.tasks():
        # Each task once: a view of a run's extra validation set (RTE's 29 human-translated rows
        # beside the machine-translated validation it was scored on) is left out.
        groups = [g for g in results.by_task(view) if g.kind == "train" and g.model == model]
        references = _reference_methods(groups, model)
        if references and not any(r.extra_val for g in groups for r in g.runs):
            views.append((view, {g.method: g for g in groups}, references))
    if len(views) < 2:
        return None
    methods = list(dict.fromkeys(m for _, by_method, _ in views for m in by_method))
    rows = []
    for method in methods:
        cells, below, within, above, deltas = [], 0, 0, 0, []
        reference = False
        for _, by_method, references in views:
            group = by_method.get(method)
            full_seeds = max(by_method[r].seeds for r in references)
            if group is None:
                cells.append("—")
                continue
            test = group.vs_reference
            mean = _mark(_num(group.mean), group.degenerate_runs)
            if method in references:
                reference = True
                cells.append(f"{mean} (reference)")
            elif test is None:
                cells.append(mean)
            else:
                separated = test.low > 0 or test.high < 0
                below += test.high < 0
                above += test.low > 0
                within += not separated
                deltas.append(test.delta)
                fewer = f"; {group.seeds} seed{'s' if group.seeds > 1 else ''}" if group.seeds < full_seeds else ""
                cells.append(f"{mean} ({test.delta:+.3f}{'*' if separated else ''}{fewer})")
        mean_delta = sum(deltas) / len(deltas) if deltas else None
        share = next((g.cost("trainable_share") for _, by, _ in views if (g := by.get(method))), None)
        rows.append(
            (
                (not reference, -(within + above), below, -(mean_delta or 0.0)),
                [method, "—" if share is None else f"{share:.3%}"]
                + cells
                + (
                    ["—"] * 4
                    if reference
                    else [str(below), str(within), str(above), "—" if mean_delta is None else f"{mean_delta:+.3f}"]
                ),
            )
        )
    rows.sort(key=lambda item: item[0])
    return Table(
        ["method", "trainable share"]
        + [view.removeprefix("slo-superglue/") for view, _, _ in views]
        + ["tasks below full FT", "within noise", "above", "mean Δ"],
        [row for _, row in rows],
    )


def across_tasks_title(model: str) -> str:
    return f"{model} across tasks, against full fine-tuning"


def across_tasks_tables(results: Results) -> list[tuple[str, Table]]:
    """``(model, across-tasks table)`` for every model that has one."""
    return [
        (model, table)
        for model in _trained_models(results.groups)
        if (table := across_tasks_table(results, model)) is not None
    ]


def class_table(groups: list[Group], model: str) -> Table | None:
    """Recall and share of the predictions per label, pooled over seeds, in the ranked order; None
    for a task without a label space."""
    ranked = [g for g in _ranked(groups, model) if g.classes is not None]
    if not ranked:
        return None
    labels = ranked[0].classes.labels
    rows = []
    for g in ranked:
        never = g.classes.never_predicted
        rows.append(
            [_mark(g.method, g.degenerate_runs), str(g.seeds)]
            + [_num(r) for r in g.classes.recall]
            + [f"{p:.0%}" for p in g.classes.predicted]
            + ["; ".join(f"seed {s}: {', '.join(map(str, m))}" for s, m in sorted(never.items())) or "—"]
        )
    return Table(
        ["method", "seeds"]
        + [f"recall {label}" for label in labels]
        + [f"predicted {label}" for label in labels]
        + ["never predicted"],
        rows,
    )


def curve_table(curves: list[Curve], groups: list[Group], model: str) -> Table | None:
    """The learning-curves plot's numbers for one model: each system's validation score after each
    epoch (mean over the seeds evaluated at every epoch), in the ranked order; None without curves."""
    by_group = {id(c.group): c for c in curves if c.group.model == model}
    ranked = [by_group[id(g)] for g in _ranked(groups, model) if id(g) in by_group]
    if not ranked:
        return None
    epochs = sorted({e for c in ranked for e in c.epochs})
    rows = []
    for c in ranked:
        score = dict(zip(c.epochs, c.scores, strict=True))
        rows.append([c.group.method, str(c.seeds)] + [_num(score.get(e)) for e in epochs])
    return Table(["method", "seeds"] + [f"epoch {e:g}" for e in epochs], rows)


def build_document(results: Results, plots: list[Plot], meta: dict[str, Any]) -> tuple[str, list[Section]]:
    title = f"slopeft report · grid {results.grid}"
    sections: list[Section] = []
    done = len({r.run_id for g in results.groups for r in g.runs})
    failed = [r for r in results.failed if r["status"] == "failed"]
    expected = meta.get("expected_runs")
    overview = Section("Overview")
    overview.blocks.append(
        f"Generated {meta['generated']}. {done} runs completed"
        + (f" of {expected} in the grid" if expected else "")
        + f", {len(failed)} failed"
        + (f", {max(expected - done - len(failed), 0)} not finished" if expected else "")
        + f". Results store: {meta['store']}."
    )
    if meta.get("description"):
        overview.blocks.append(str(meta["description"]))
    overview.blocks.append(
        "Scores are on the validation set (SloBench withholds test labels). Mean ± sample standard "
        "deviation over seeds; “95% CI over seeds” is the t-interval of that mean (seed-to-seed variation: "
        "initialisation and data order); “95% CI bootstrap” is a percentile bootstrap over validation examples "
        f"({results.draws} draws, {TRANSLATION_DRAWS} for translation), each draw scored as the task's own "
        "metric function scores it (from summed per-example statistics where the metric is a sum over "
        "examples: the same numbers) and averaged over seeds (the sampling error of a finite validation "
        "set); MultiRC is resampled by question. "
        "“Δ vs best” and “Δ vs full FT” are paired bootstrap tests (same draws for both systems, two-sided "
        "p-value from the null-shifted differences) of each method against the best method, and against full "
        "fine-tuning (in a sweep, its best-scoring full fine-tuning setting), of the same model and task, "
        "over the seeds both systems have (named in the cell where one system has seeds the other lacks). A task trained or scored on other than its default sets "
        "(e.g. RTE trained on the machine-translated set) gets its own table, named with those sets; the "
        "leaderboard averages use the leaderboard's validation sets. "
        "“train s” is wall time, which a busy or paused machine inflates; “train CPU s” is the CPU time "
        "of training, the cost to compare. "
        f"{DEGENERATE_MARK} marks degenerate runs: every validation prediction is the same label."
    )
    sections.append(overview)
    panels = curve_panels(results)
    for task in results.tasks():
        groups = results.by_task(task)
        section = Section(f"Task {task}")  # a task view: the task, with its sets when not the defaults
        section.blocks.append(task_table(groups))
        for model in _trained_models(groups):
            section.blocks.append(
                f"{model} on {task}, ranked: the baselines, full fine-tuning, then the methods by mean "
                "score; each seed's score; Δ is the paired test against full fine-tuning above."
            )
            section.blocks.append(ranked_table(groups, model))
            classes = class_table(groups, model)
            if classes is not None:
                section.blocks.append(
                    f"{model} on {task}, per class: the recall of each gold label and each label's share "
                    "of the predictions, every seed's predictions pooled; the labels a seed never predicts."
                )
                section.blocks.append(classes)
            curves = curve_table(panels.get(task, []), groups, model)
            if curves is not None:
                section.blocks.append(
                    f"{model} on {task}, after each epoch: the validation score, mean over the seeds evaluated "
                    "at every epoch (the learning-curves plot's numbers)."
                )
                section.blocks.append(curves)
        sections.append(section)
    for model, across in across_tasks_tables(results):
        section = Section(f"{model} across tasks")
        section.blocks.append(
            f"{across_tasks_title(model)}: each method's mean on each task (its "
            "validation set as trained) and, in brackets, its paired difference to full FT on the "
            "seeds both have (and its seeds, where fewer than full FT's); * where the difference's 95% "
            f"interval excludes 0; {DEGENERATE_MARK} where a seed's run is degenerate. Then the number of "
            "tasks where the method is below full FT, within noise of it and above it, and its mean "
            "difference over those tasks. Rows: full FT, then by the tasks not below it."
        )
        section.blocks.append(across)
        sections.append(section)
    sections += [_average_section(group, results) for _, group in TASK_GROUPS.items()]
    reference = Section("Published reference points")
    reference.blocks.append(
        "From docs/slobench.md, shipped with their sources in slopeft/resources/reference_points.csv. "
        "“ours” is the best system of this grid on the same task and metric (our majority baseline for "
        "the majority rows)."
    )
    reference.blocks.append(
        Table(
            [
                "board",
                "split",
                "system",
                "task",
                "metric",
                "published",
                "ours",
                "Δ",
                "ours by",
                "note",
                "source",
            ],
            [
                [
                    c.reference.board,
                    c.reference.split,
                    c.reference.system,
                    c.reference.task,
                    c.reference.metric,
                    _num(c.reference.value),
                    _num(c.ours),
                    "—" if c.delta is None else f"{c.delta:+.3f}",
                    c.by,
                    c.note,
                    c.reference.source,
                ]
                for c in compare_with_references(results)
            ],
        )
    )
    sections.append(reference)
    figures = Section("Plots")
    figures.blocks += plots
    sections.append(figures)
    if results.failed:
        failures = Section("Runs not completed")
        failures.blocks.append(
            Table(
                ["run", "status", "error"],
                [[r["run_id"], r["status"], (r.get("error") or "")[:300]] for r in results.failed],
            )
        )
        sections.append(failures)
    if meta.get("skipped"):
        skipped = Section("Combinations not run")
        skipped.blocks.append(
            "Skipped when the grid was expanded, each with the model's or method's own reason."
        )
        skipped.blocks.append(
            Table(["run", "why"], [[item["what"], item["why"]] for item in meta["skipped"]])
        )
        sections.append(skipped)
    provenance = Section("Provenance")
    provenance.blocks.append(Table(["what", "values"], [[k, v] for k, v in meta["provenance"].items()]))
    sections.append(provenance)
    return title, sections


# -- rendering ----------------------------------------------------------------------------------
def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, sections: list[Section], out_dir: Path) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                lines.append("| " + " | ".join(_md_cell(c) for c in block.columns) + " |")
                lines.append("|" + "|".join(" --- " for _ in block.columns) + "|")
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            elif isinstance(block, Plot):
                png = block.png.relative_to(out_dir).as_posix()
                svg = block.svg.relative_to(out_dir).as_posix()
                lines.append(f"![{block.alt}]({png})")
                lines.append("")
                lines.append(f"*{block.title}* ([SVG]({svg}))")
            else:
                lines.append(str(block))
            lines.append("")
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.85rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d0d0; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f5f7; } tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td:first-child, td:nth-child(2) { white-space: nowrap; } td:last-child { min-width: 10rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #555; }
.degenerate { color: #b00020; }
"""


def _html_cell(text: str, header: bool = False) -> str:
    text = str(text)
    tag = "th" if header else "td"
    numeric = not header and (text[:1].isdigit() or text.startswith(("+", "-", "−", "[")))
    cls = ' class="num"' if numeric else ""
    body = html.escape(text)
    if DEGENERATE_MARK in text and not header:
        body = body.replace(
            DEGENERATE_MARK, f'<span class="degenerate" title="degenerate">{DEGENERATE_MARK}</span>'
        )
    return f"<{tag}{cls}>{body}</{tag}>"


def render_html(title: str, sections: list[Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        # Standalone: nothing is fetched (no favicon request either).
        '<link rel="icon" href="data:,">',
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                parts.append("<table>")
                parts.append(
                    "<thead><tr>" + "".join(_html_cell(c, True) for c in block.columns) + "</tr></thead>"
                )
                parts.append("<tbody>")
                parts += ["<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in block.rows]
                parts.append("</tbody></table>")
            elif isinstance(block, Plot):
                data = base64.b64encode(block.svg.read_bytes()).decode()
                parts.append(
                    f'<figure id="plot-{html.escape(block.name)}"><img alt="{html.escape(block.alt)}" '
                    f'src="data:image/svg+xml;base64,{data}"><figcaption>{html.escape(block.title)}</figcaption></figure>'
                )
            else:
                parts.append(f"<p>{html.escape(str(block))}</p>")
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _average_section(group: TaskGroup, results: Results) -> Section:
    """A task group's leaderboard average for every system that ran all its tasks."""
    section = Section(f"{group.title} average")
    averages = [a for a in results.averages if a.group == group.name]
    if averages:
        section.blocks.append(f"The leaderboard's average: {group.average_description} (validation).")
        rows = [
            [
                a.model,
                _mark(a.method, a.degenerate_runs),
                str(a.seeds),
                _num(a.mean) if a.std is None else f"{_num(a.mean)} ± {_num(a.std)}",
                "—" if a.low is None else f"[{_num(a.low)}, {_num(a.high)}]",
                f"{DEGENERATE_MARK} {a.degenerate_runs} degenerate task runs" if a.degenerate_runs else "",
            ]
            for a in sorted(averages, key=lambda a: -a.mean)
        ]
        section.blocks.append(
            Table(["model", "method", "seeds", "average (mean ± std)", "95% CI", "flags"], rows)
        )
    else:
        present = [t for t in group.members if t in results.tasks()]
        section.blocks.append(
            f"Not computed: it needs all {len(group.members)} tasks of {group.name} for a system; this grid "
            f"has {len(present)} ({', '.join(t.split('/')[-1] for t in present) or 'none'})."
        )
    return section


def _provenance(results: Results) -> dict[str, str]:
    records = [r.record for g in results.groups for r in g.runs]
    versions: dict[str, set] = {}
    for record in records:
        for key, value in record.versions.items():
            versions.setdefault(key, set()).add(str(value))
    commits = {f"{r.commit or 'unknown'}{' (dirty)' if r.dirty else ''}" for r in records}
    fingerprints: dict[str, set] = {}
    for g in results.groups:
        for r in g.runs:
            fingerprints.setdefault(g.view, set()).add((r.record.data_fingerprint or "")[:12])
    provenance = {f"version {k}": ", ".join(sorted(v)) for k, v in sorted(versions.items())}
    provenance["git commit"] = ", ".join(sorted(commits)) or "—"
    for task, values in fingerprints.items():
        provenance[f"data {task}"] = ", ".join(sorted(values))
    return provenance


def _test_json(test) -> dict[str, Any] | None:
    if test is None:
        return None
    return {"delta": test.delta, "ci": [test.low, test.high], "p": test.p_value, "seeds": list(test.seeds) or "all"}


def _summary_json(results: Results) -> dict[str, Any]:
    return {
        "grid": results.grid,
        "groups": [
            {
                "task": g.task,
                "view": g.view,
                "train_set": g.train_set,
                "val_set": g.val_set,
                "model": g.model,
                "method": g.method,
                "kind": g.kind,
                "seeds": g.seeds,
                "main_metric": g.main_metric,
                "mean": g.mean,
                "std": g.std,
                "seed_ci": None if g.seed_interval is None else list(g.seed_interval),
                "ci": None if g.ci is None else [g.ci.low[g.main_metric], g.ci.high[g.main_metric]],
                "vs_best": _test_json(g.vs_best),
                "best_method": g.best_method,
                "vs_reference": _test_json(g.vs_reference),
                "reference_method": g.reference_method,
                "degenerate_runs": g.degenerate_runs,
                "per_class": None
                if g.classes is None
                else {
                    "labels": list(g.classes.labels),
                    "recall": list(g.classes.recall),
                    "predicted": list(g.classes.predicted),
                    "never_predicted": {str(k): list(v) for k, v in g.classes.never_predicted.items()},
                },
                "runs": [r.run_id for r in g.runs],
                "trainable": g.cost("trainable"),
                "trainable_share": g.cost("trainable_share"),
                "adapter_bytes": g.cost("adapter_bytes"),
                "train_seconds": g.cost("train_seconds"),
                "train_cpu_seconds": g.cost("train_cpu_seconds"),
                "peak_rss_mb": g.cost("peak_rss_mb", "max"),
            }
            for g in results.groups
        ],
        "superglue_average": [a.__dict__ for a in results.averages],
        "failed": [
            {"run_id": r["run_id"], "status": r["status"], "error": r.get("error")} for r in results.failed
        ],
    }


def build_report(
    rows: list[dict[str, Any]],
    out_dir: Path,
    grid_name: str = "",
    description: str = "",
    store_path: Path | None = None,
    expected_runs: int | None = None,
    data_dir: str | None = None,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    skipped: list[dict[str, str]] | None = None,
) -> ReportFiles:
    """Writes report.md, report.html, plots/ and summary.json for the store ``rows`` of one grid."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = summarise(rows, grid_name, data_dir=data_dir, draws=draws, seed=seed)
    plots = make_plots(results, out_dir / "plots") if results.groups else []
    meta = {
        "generated": time.strftime("%Y-%m-%d %H:%M %Z"),
        "store": str(store_path) if store_path else "—",
        "expected_runs": expected_runs,
        "description": description,
        "skipped": skipped or [],
        "provenance": _provenance(results),
    }
    title, sections = build_document(results, plots, meta)
    markdown = out_dir / "report.md"
    markdown.write_text(render_markdown(title, sections, out_dir), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(render_html(title, sections), encoding="utf-8")
    summary = out_dir / "summary.json"
    summary.write_text(json.dumps(_summary_json(results), indent=2, default=float) + "\n", encoding="utf-8")
    across = [(across_tasks_title(model), table) for model, table in across_tasks_tables(results)]
    return ReportFiles(markdown, page, plots, summary, ranked_tables(results) + across)


def report_for_grid(
    grid_out: Path, out_dir: Path, data_dir: str | None = None, draws: int = DEFAULT_DRAWS, seed: int = 0
) -> ReportFiles:
    """The report of the grid whose output folder is ``grid_out`` (its results.sqlite and grid.json)."""
    from slopeft.errors import ConfigError
    from slopeft.experiments.store import open_store

    grid_out = Path(grid_out)
    store = open_store(grid_out / "results.sqlite")
    described = grid_out / "grid.json"
    info = json.loads(described.read_text(encoding="utf-8")) if described.is_file() else {}
    rows = store.rows()
    if "runs" in info:  # rows of runs the grid no longer has (it was edited) stay out of its report
        wanted = set(info["runs"])
        rows = [r for r in rows if r["run_id"] in wanted]
    if not rows:
        raise ConfigError(f"The results store in {grid_out} has no runs yet. Run the grid first.")
    return build_report(
        rows,
        out_dir,
        grid_name=info.get("name", grid_out.name),
        description=info.get("description", ""),
        store_path=grid_out / "results.sqlite",
        expected_runs=len(info["runs"]) if "runs" in info else None,
        data_dir=data_dir or info.get("data_dir"),
        draws=draws,
        seed=seed,
        skipped=info.get("skipped"),
    )
