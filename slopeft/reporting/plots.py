"""Report plots with matplotlib's object API on the Agg canvas (no pyplot state, no display needed).

Four figures, each written as PNG and SVG:

- ``pareto``: score against trainable parameters (task head excluded) per task with a trained run,
  one named point per (model, method) with its 95% interval, the Pareto front (fewest parameters
  for the best score) as a step line and the baselines as dashed lines;
- ``methods``: per task, one row per (model, method) from the lowest score to the highest: its mean
  with its interval and each seed's score, full fine-tuning's mean as a line; degenerate groups hollow;
- ``curves``: per task, each method's validation score after each epoch (mean over seeds), where
  runs were evaluated more than once;
- ``costs``: per (model, method), mean training CPU time, adapter size and peak memory across tasks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from slopeft.reporting.results import REFERENCE_METHOD, Group, Results, task_view

PALETTE = ["#1b6ca8", "#d1495b", "#2a9d8f", "#e9a03b", "#6a4c93", "#8d6e63", "#00798c", "#c44536", "#5c946e"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h"]


@dataclass
class Plot:
    name: str
    title: str
    png: Path
    svg: Path
    alt: str


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)  # a renderer to measure text with (point names); no pyplot, no display
    return fig


def _save(fig, out_dir: Path, name: str) -> tuple[Path, Path]:
    import matplotlib

    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    with matplotlib.rc_context({"svg.hashsalt": "slopeft", "svg.fonttype": "path"}):
        fig.savefig(png, format="png", metadata={"Software": None})
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return png, svg


def _grid_shape(n: int, cols: int = 3) -> tuple[int, int]:
    cols = min(cols, max(n, 1))
    return math.ceil(max(n, 1) / cols), cols


def _short(view: str) -> str:
    """A task view's short name: the task's, with the view's sets (``rte (train machine)``)."""
    from slopeft.tasks import TASKS

    task, _, sets = view.partition(" (")
    short = TASKS.get(task).spec.short_name if task in TASKS else task
    return f"{short} ({sets}" if sets else short


def _left_out(results: Results, drawn, why: str) -> str:
    """A figure title's note on the task views it has no panel for: `` (why: cb, copa)``, or nothing."""
    missing = [_short(view) for view in results.tasks() if view not in drawn]
    return f" ({why}: {', '.join(missing)})" if missing else ""


def _interval(group: Group) -> tuple[float, float] | None:
    if group.ci is None or group.main_metric not in group.ci.low:
        return None
    return group.ci.low[group.main_metric], group.ci.high[group.main_metric]


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (fewer parameters, higher score), by parameters."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def _family(group: Group) -> str:
    """The registered method of a group (a sweep labels its settings ``lora-lr0.001``)."""
    return group.runs[0].method_name or group.method


def _styles(results: Results) -> tuple[dict[str, str], dict[str, str]]:
    """A colour per method label (what the plots compare; a sweep's settings of one method share
    their method's colour) and a marker per model."""
    from matplotlib import colormaps

    trained = [g for g in results.groups if g.kind == "train"]
    models = sorted({g.model for g in trained})
    families = sorted({_family(g) for g in trained})
    table = colormaps["tab20"].colors if len(families) > len(PALETTE) else PALETTE
    family_colours = {f: _hex(table[i % len(table)]) for i, f in enumerate(families)}
    colours = {g.method: family_colours[_family(g)] for g in trained}
    markers = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(models)}
    return colours, markers


def _hex(colour) -> str:
    if isinstance(colour, str):
        return colour
    return "#" + "".join(f"{round(c * 255):02x}" for c in colour[:3])


@dataclass
class ParetoPoint:
    """One trained system on one task: what the score-vs-parameters plot draws."""

    label: str  # the method, or ``model · method`` where a task has several models
    group: Group
    parameters: float  # trainable parameters without the task head (with it, for records that lack the split)
    score: float
    interval: tuple[float, float] | None
    named: bool = True  # its label is written beside it (in a crowded panel only each method's best)


def _parameters(group: Group) -> float | None:
    """Trainable parameters without the task head: every method of a task trains the same head, so
    counting it would squeeze the methods' differences (BitFit's 51k biases beside a 149k head)."""
    return group.cost("trainable_without_head") or group.cost("trainable")


#: More points than this in one panel (a sweep's settings): only each method's best setting is named.
MAX_NAMED_POINTS = 20


def pareto_panels(results: Results) -> dict[str, list[ParetoPoint]]:
    """Per task view with at least one trained system, its points (a view with only baselines has no
    parameters to plot and gets no panel; where no view has a trained system, every view gets one).
    In a panel of more than :data:`MAX_NAMED_POINTS` points only each (model, method)'s best-scoring
    setting is named; the others share its colour."""
    panels: dict[str, list[ParetoPoint]] = {}
    for task in results.tasks():
        trained = [g for g in results.by_task(task) if g.kind == "train" and _parameters(g)]
        models = {g.model for g in trained}
        best: dict[tuple[str, str], Group] = {}
        for g in trained:
            key = (g.model, _family(g))
            if key not in best or g.mean > best[key].mean:
                best[key] = g
        crowded = len(trained) > MAX_NAMED_POINTS
        panels[task] = [
            ParetoPoint(g.method if len(models) == 1 else g.label, g, _parameters(g), g.mean, _interval(g),
                        named=not crowded or best[g.model, _family(g)] is g)
            for g in trained
        ]
    with_points = {task: points for task, points in panels.items() if points}
    return with_points or panels


#: Where a point's name may go, in points from it (first free wins): right, left, above, below, diagonals.
_NAME_PLACES = [(6, 2, "left"), (-6, 2, "right"), (0, 8, "center"), (0, -12, "center"),
                (6, 9, "left"), (6, -10, "left"), (-6, 9, "right"), (-6, -10, "right")]


def _name_points(ax, points: list[ParetoPoint], fontsize: float) -> None:
    """Writes each named point's name beside it, in the first place (:data:`_NAME_PLACES`) where it covers
    neither an earlier name nor a point; where none is free, to its right. matplotlib has no label
    placement of its own and adjustText would be a dependency for one plot."""
    renderer = ax.figure.canvas.get_renderer()
    dots = [ax.transData.transform((p.parameters, p.score)) for p in points]
    taken = []
    for point in (p for p in points if p.named):
        chosen = None
        for dx, dy, align in _NAME_PLACES:
            text = ax.annotate(
                point.label, (point.parameters, point.score), xytext=(dx, dy), textcoords="offset points",
                ha=align, va="center", fontsize=fontsize, color="#333333",
            )
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(other) for other in taken) and not any(
                box.x0 - 3 <= x <= box.x1 + 3 and box.y0 - 3 <= y <= box.y1 + 3 for x, y in dots
            ):
                chosen = box
                break
            text.remove()
        if chosen is None:
            text = ax.annotate(
                point.label, (point.parameters, point.score), xytext=(6, 2), textcoords="offset points",
                ha="left", va="center", fontsize=fontsize, color="#333333",
            )
            chosen = text.get_window_extent(renderer)
        taken.append(chosen)


def plot_pareto(results: Results, out_dir: Path) -> Plot:
    panels = pareto_panels(results)
    rows, cols = _grid_shape(len(panels))
    single = len(panels) == 1
    fig = _figure(8.0 if single else 4.6 * cols, 5.2 if single else 3.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    colours, markers = _styles(results)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (task, points) in zip(axes.flat, panels.items(), strict=False):
        groups = results.by_task(task)
        for g in groups:
            if g.kind == "baseline":
                ax.axhline(g.mean, color="#777777", linestyle="--", linewidth=1, label=f"{g.method} baseline")
        for point in points:
            g = point.group
            yerr = [[g.mean - point.interval[0]], [point.interval[1] - g.mean]] if point.interval else None
            ax.errorbar(
                [point.parameters],
                [point.score],
                yerr=yerr,
                fmt=markers[g.model],
                color=colours[g.method],
                mfc="white" if g.degenerate_runs else colours[g.method],
                capsize=3,
                label=g.label,
            )
        front = pareto_front([(p.parameters, p.score) for p in points])
        if len(front) > 1:
            ax.step(
                *zip(*front, strict=True),
                where="post",
                color="#222222",
                linewidth=1,
                alpha=0.7,
                label="Pareto front",
            )
        elif front:
            ax.plot(*front[0], marker="o", markersize=14, mfc="none", color="#222222", label="Pareto front")
        ax.set_xscale("log")
        ax.set_title(_short(task), fontsize=10)
        ax.set_xlabel("trainable parameters, task head excluded (log)")
        ax.set_ylabel(groups[0].main_metric if groups else "score")
        ax.grid(True, alpha=0.3)
    handles, labels = [], []
    systems = {p.group.label for points in panels.values() for p in points}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels and label not in systems:  # systems are named beside their points
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=8)
    fig.suptitle(
        "Score (mean over seeds, 95% bootstrap interval) vs trainable parameters; hollow: degenerate runs",
        fontsize=11,
    )
    fig.canvas.draw()  # lays the figure out, so the names are placed where the points end up
    for ax, points in zip(axes.flat, panels.values(), strict=False):
        _name_points(ax, points, fontsize=7 if single else 6)
    png, svg = _save(fig, out_dir, "pareto")
    return Plot(
        "pareto",
        "Score vs trainable parameters, Pareto front per task" + _left_out(results, panels, "no trained run yet"),
        png,
        svg,
        "Scatter plots of validation score against trainable parameters per task",
    )


def _methods_rows(results: Results, task: str) -> list[Group]:
    """A task view's systems from the lowest score to the highest (drawn bottom to top)."""
    return sorted(results.by_task(task), key=lambda g: g.mean)


def methods_panels(results: Results) -> list[str]:
    """The task views the methods plot draws: those with two or more systems to compare (a panel of
    one baseline compares nothing; its score is in the report's table); every view when none has."""
    views = results.tasks()
    return [t for t in views if len(results.by_task(t)) > 1] or views


def plot_methods(results: Results, out_dir: Path) -> Plot:
    """One panel per task view, stacked: a row per system, from the lowest score to the highest, its
    mean with the 95% bootstrap interval and each seed's score as a small mark above it; full fine-tuning's mean
    as a dotted line. A dot plot, not bars: the axis can start near the scores, so the differences
    the tables test are visible, and the seeds show their spread. Views with one system only are
    left out (:func:`methods_panels`) and named in the title."""
    tasks = methods_panels(results)
    heights = [len(results.by_task(t)) + 1.6 for t in tasks]
    fig = _figure(8.0, max(2.5, 0.24 * sum(heights) + 0.8))
    axes = fig.subplots(len(tasks), 1, squeeze=False, gridspec_kw={"height_ratios": heights or [1]})[:, 0]
    colours, _ = _styles(results)
    for ax, task in zip(axes, tasks, strict=True):
        groups = _methods_rows(results, task)
        models = {g.model for g in groups if g.kind == "train"}
        for row, g in enumerate(groups):
            colour = "#777777" if g.kind == "baseline" else colours.get(g.method, PALETTE[0])
            interval = _interval(g)
            xerr = [[g.mean - interval[0]], [interval[1] - g.mean]] if interval else None
            ax.errorbar([g.mean], [row], xerr=xerr, fmt="s" if g.kind == "baseline" else "o", color=colour,
                        mfc="white" if g.degenerate_runs else colour, capsize=3, markersize=6)
            if g.seeds > 1:
                ax.plot([r.main for r in g.runs], [row + 0.28] * g.seeds, linestyle="none", marker="v",
                        markersize=3.5, color="#222222", alpha=0.8)
        reference = next((g for g in groups if g.method == REFERENCE_METHOD and g.kind == "train"), None)
        if reference is not None:
            ax.axvline(reference.mean, color="#2a9d8f", linestyle=":", linewidth=1)
        ax.set_yticks(range(len(groups)))
        ax.set_yticklabels(
            [
                f"{g.method if g.kind == 'train' and len(models) <= 1 else g.label}"
                f"{' †' if g.degenerate_runs else ''}{f' ({g.seeds} seeds)' if g.seeds > 1 else ''}"
                for g in groups
            ],
            fontsize=7,
        )
        ax.set_ylim(-0.7, len(groups) - 0.3)
        ax.set_title(_short(task), fontsize=9, loc="left")
        ax.set_xlabel(groups[0].main_metric if groups else "score", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle(
        "Validation score: mean over seeds with 95% bootstrap interval, ▾ each seed; "
        "dotted: full fine-tuning; hollow †: degenerate",
        fontsize=9,
    )
    png, svg = _save(fig, out_dir, "methods")
    return Plot(
        "methods",
        "Methods per task: mean, 95% interval and each seed"
        + _left_out(results, tasks, "one system only, in the tables"),
        png,
        svg,
        "Dot plots of score per method and task, lowest to highest, with intervals and seed scores",
    )


def plot_costs(results: Results, out_dir: Path) -> Plot:
    systems: dict[tuple[str, str], list[Group]] = {}
    for g in results.groups:
        if g.kind == "train":
            systems.setdefault((g.model, g.method), []).append(g)
    names = [f"{method} · {model}" for model, method in systems]
    colours, _ = _styles(results)
    metrics = [
        ("train_cpu_seconds", "train CPU time (s, mean per run)", 1.0, "mean"),
        ("adapter_bytes", "adapter size (MB)", 2**-20, "mean"),
        ("peak_rss_mb", "peak memory (RSS MB, max)", 1.0, "max"),
    ]
    fig = _figure(12, max(2.5, 0.35 * len(names) + 1.4))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, (key, title, scale, how) in zip(axes, metrics, strict=True):
        values, missing = [], []
        for groups in systems.values():
            per_task = [v for g in groups if (v := g.cost(key, how)) is not None]
            # No bar where nothing was recorded (records from before the CPU time was kept): their
            # wall time would stand in for it, inflated by whatever else the machine ran.
            missing.append(not per_task)
            values.append((max(per_task) if how == "max" else sum(per_task) / len(per_task)) * scale if per_task else 0.0)
        ax.barh(range(len(names)), values, color=[colours.get(m, PALETTE[0]) for _, m in systems])
        for row, absent in enumerate(missing):
            if absent:
                ax.text(0, row, " not recorded", va="center", fontsize=7, color="#777777")
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names if ax is axes[0] else [""] * len(names), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle("What each method costs (averaged over tasks)", fontsize=11)
    png, svg = _save(fig, out_dir, "costs")
    return Plot(
        "costs",
        "Cost per method: training CPU time, adapter size, peak memory",
        png,
        svg,
        "Horizontal bar charts of training CPU time, adapter size and peak memory per method",
    )


@dataclass
class Curve:
    """One trained system's validation score after each evaluation, averaged over its seeds."""

    group: Group
    epochs: list[float]
    scores: list[float]
    seeds: int  # the seeds averaged (those evaluated at every point)


def _history(run) -> dict[float, float]:
    """A run's validation score per epoch from its record's history; empty where the history is not
    of the set this result is scored on (a run's extra validation sets are scored once, at the end)."""
    record = run.record
    if record is None or not record.metrics.history:
        return {}
    config = record.config
    if task_view(run.task, config.get("train_set"), config.get("val_set"))[1] != run.val_set:
        return {}
    entries = [
        e for e in record.metrics.history
        if e.get("step") and e.get("epoch") and run.main_metric in (e.get("metrics") or {})
    ]
    if not entries:
        return {}
    # The epoch from the step: records written before 3 December 2026 stored the final evaluation's
    # epoch rounded down (741 steps of 247 per epoch: "epoch 2"). A rounded-down epoch only raises
    # step / epoch, so the smallest ratio is the steps per epoch (exact at any epoch's end).
    steps_per_epoch = min(e["step"] / e["epoch"] for e in entries)
    return {round(e["step"] / steps_per_epoch, 2): float(e["metrics"][run.main_metric]) for e in entries}


def curve_panels(results: Results) -> dict[str, list[Curve]]:
    """Per task view, the trained systems evaluated at two or more points: the mean over seeds at
    the epochs every seed was evaluated at. In a panel of more than :data:`MAX_NAMED_POINTS` systems
    (a sweep) only each (model, method)'s best-scoring setting is drawn."""
    panels: dict[str, list[Curve]] = {}
    for view in results.tasks():
        curves = []
        for g in results.by_task(view):
            if g.kind != "train":
                continue
            histories = [h for h in map(_history, g.runs) if h]
            if not histories:
                continue
            epochs = sorted(set.intersection(*(set(h) for h in histories)))
            if len(epochs) < 2:
                continue
            scores = [sum(h[e] for h in histories) / len(histories) for e in epochs]
            curves.append(Curve(g, epochs, scores, len(histories)))
        if len(curves) > MAX_NAMED_POINTS:
            best: dict[tuple[str, str], Curve] = {}
            for c in curves:
                key = (c.group.model, _family(c.group))
                if key not in best or c.group.mean > best[key].group.mean:
                    best[key] = c
            curves = list(best.values())
        if curves:
            panels[view] = curves
    return panels


def plot_curves(results: Results, out_dir: Path) -> Plot | None:
    """Validation score after each epoch per task view and method (mean over seeds): whether a
    method was still learning when its schedule ended, or peaked before. None where no run was
    evaluated more than once."""
    panels = curve_panels(results)
    if not panels:
        return None
    rows, cols = _grid_shape(len(panels), cols=2)
    fig = _figure(9.0 if cols == 1 else 6.0 * cols, 4.6 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    colours, markers = _styles(results)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (view, curves) in zip(axes.flat, panels.items(), strict=False):
        several_models = len({c.group.model for c in curves}) > 1
        for c in sorted(curves, key=lambda c: -c.scores[-1]):  # the legend from the best final score down
            g = c.group
            name = g.label if several_models else g.method
            ax.plot(c.epochs, c.scores, marker=markers[g.model], markersize=4, linewidth=1.4,
                    color=colours[g.method], label=f"{name} ({c.seeds} seed{'s' if c.seeds > 1 else ''})")
        for g in results.by_task(view):
            if g.kind == "baseline":
                ax.axhline(g.mean, color="#777777", linestyle="--", linewidth=1)
        ax.set_title(_short(view), fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(curves[0].group.main_metric)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle("Validation score after each epoch, mean over seeds; dashed: baselines", fontsize=11)
    png, svg = _save(fig, out_dir, "curves")
    return Plot(
        "curves",
        "Learning curves: validation score after each epoch" + _left_out(results, panels, "not evaluated per epoch"),
        png,
        svg,
        "Line plots of validation score against epoch per method and task",
    )


def make_plots(results: Results, out_dir: Path) -> list[Plot]:
    """Writes the figures as PNG and SVG into ``out_dir`` (the learning curves where runs were
    evaluated more than once, the costs where something was trained)."""
    out_dir = Path(out_dir)
    plots = [plot_pareto(results, out_dir), plot_methods(results, out_dir)]
    curves = plot_curves(results, out_dir)
    if curves is not None:
        plots.append(curves)
    if any(g.kind == "train" for g in results.groups):
        plots.append(plot_costs(results, out_dir))
    return plots
