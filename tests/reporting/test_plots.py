"""The score-vs-parameters plot: what it draws (panels, parameters without the head) and that every
point's name is written where it covers no other name."""

from __future__ import annotations

import pytest

from slopeft.reporting.plots import ParetoPoint, _figure, _name_points, pareto_panels, plot_pareto
from slopeft.reporting.results import Group, Results, RunResult


def _run(method: str, trainable: int | None, head: int | None, kind: str = "train") -> RunResult:
    cost = {} if trainable is None else {"trainable": trainable}
    if head is not None:
        cost["trainable_without_head"] = trainable - head
    return RunResult(run_id=f"{method}-s1", kind=kind, task="si-nli", model="e5", method=method, seed=1,
                     main_metric="accuracy", main=0.5, metrics={}, cost=cost, predictions=None, degenerate=False,
                     record=None)


def _group(task: str, method: str, mean: float, trainable: int | None = 1000, head: int | None = 600,
           kind: str = "train", model: str = "e5") -> Group:
    return Group(task=task, model=model, method=method, kind=kind, runs=[_run(method, trainable, head, kind)],
                 main_metric="accuracy", mean=mean, std=None)


def _results(groups: list[Group]) -> Results:
    return Results(grid="g", groups=groups, averages=[], failed=[], draws=0)


def test_only_tasks_with_a_trained_system_get_a_panel_and_the_head_is_not_counted():
    results = _results([
        _group("si-nli", "majority", 0.34, trainable=None, head=None, kind="baseline"),
        _group("si-nli", "lora", 0.52, trainable=296_451, head=148_995),
        _group("si-nli", "old-record", 0.50, trainable=5_000, head=None),  # no head split recorded
        _group("cb", "majority", 0.36, trainable=None, head=None, kind="baseline"),
    ])
    panels = pareto_panels(results)
    assert list(panels) == ["si-nli"]  # cb has only its baseline: nothing to plot against parameters
    assert {p.label: p.parameters for p in panels["si-nli"]} == {"lora": 147_456, "old-record": 5_000}


def test_a_grid_with_only_baselines_still_draws_every_task():
    results = _results([_group("cb", "majority", 0.36, None, None, "baseline"),
                        _group("copa", "majority", 0.45, None, None, "baseline")])
    assert list(pareto_panels(results)) == ["cb", "copa"]


def test_points_are_named_by_method_or_by_model_and_method_where_a_task_has_several_models():
    results = _results([_group("si-nli", "lora", 0.5, model="e5"), _group("si-nli", "lora", 0.6, model="xlmr")])
    assert sorted(p.label for p in pareto_panels(results)["si-nli"]) == ["e5 · lora", "xlmr · lora"]


def test_crowded_points_get_names_that_do_not_overlap():
    fig = _figure(6, 4)
    ax = fig.subplots()
    groups = [_group("si-nli", f"method-{i}", 0.50 + 0.002 * i, trainable=100_000 + 3_000 * i, head=0)
              for i in range(4)]
    points = [ParetoPoint(g.method, g, g.cost("trainable"), g.mean, None) for g in groups]
    ax.scatter([p.parameters for p in points], [p.score for p in points])
    ax.set_xscale("log")
    ax.set_xlim(1e4, 1e6)
    ax.set_ylim(0.4, 0.6)
    fig.canvas.draw()
    _name_points(ax, points, fontsize=7)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert sorted(t.get_text() for t in ax.texts) == [p.label for p in points]
    for i, box in enumerate(boxes):
        for other in boxes[i + 1 :]:
            assert not box.overlaps(other)


def test_the_pareto_figure_is_written(tmp_path):
    results = _results([_group("si-nli", "majority", 0.34, None, None, "baseline"),
                        _group("si-nli", "lora", 0.52), _group("si-nli", "full", 0.57, 118_000_000, 149_000),
                        _group("cb", "majority", 0.36, None, None, "baseline")])
    plot = plot_pareto(results, tmp_path)
    assert plot.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.svg.is_file()
    assert "no trained run yet: cb" in plot.title
    with pytest.raises(KeyError):  # the baseline-only task has no panel to look up
        pareto_panels(results)["cb"]


def test_the_methods_plot_rows_go_from_the_lowest_score_to_the_highest(tmp_path):
    from slopeft.reporting.plots import _methods_rows, plot_methods

    results = _results([_group("si-nli", "full", 0.57), _group("si-nli", "majority", 0.34, None, None, "baseline"),
                        _group("si-nli", "lora", 0.52), _group("cb", "majority", 0.36, None, None, "baseline")])
    assert [g.method for g in _methods_rows(results, "si-nli")] == ["majority", "lora", "full"]
    plot = plot_methods(results, tmp_path)
    assert plot.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.svg.is_file()
    assert "one system only, in the tables: cb" in plot.title  # a lone baseline gets no panel


def test_the_methods_plot_draws_views_with_two_systems_or_every_view_when_none_has():
    from slopeft.reporting.plots import methods_panels

    lone = [_group("cb", "majority", 0.36, None, None, "baseline"),
            _group("copa", "majority", 0.45, None, None, "baseline")]
    assert methods_panels(_results(lone)) == ["cb", "copa"]
    pair = [_group("mt/sl-en", "copy-source", 0.23, None, None, "baseline"),
            _group("mt/sl-en", "zero-shot", 0.22, None, None, "baseline")]
    assert methods_panels(_results(lone + pair)) == ["mt/sl-en"]  # two baselines compare; one does not


def test_a_crowded_panel_names_only_each_methods_best_setting_in_its_methods_colour():
    from slopeft.reporting.plots import MAX_NAMED_POINTS, _styles

    groups = []
    for family in ("lora", "bitfit"):
        for i in range(MAX_NAMED_POINTS // 2 + 1):  # a sweep: one group per learning rate
            g = _group("si-nli", f"{family}-lr{i}", 0.40 + 0.01 * i)
            for run in g.runs:
                run.method_name = family
            groups.append(g)
    results = _results(groups)
    points = pareto_panels(results)["si-nli"]
    assert len(points) > MAX_NAMED_POINTS
    top = MAX_NAMED_POINTS // 2
    assert sorted(p.label for p in points if p.named) == [f"bitfit-lr{top}", f"lora-lr{top}"]
    colours, _ = _styles(results)
    assert len({colours[f"lora-lr{i}"] for i in range(top + 1)}) == 1 and colours["lora-lr0"] != colours["bitfit-lr0"]


def _evaluated(method: str, seed: int, history: list[tuple[int, float, float]], val_set: str = "human",
               config_val: str | None = None) -> RunResult:
    """A trained run whose record's history is ``(step, epoch, accuracy)`` per evaluation."""
    from types import SimpleNamespace

    record = SimpleNamespace(
        metrics=SimpleNamespace(history=[{"step": s, "epoch": e, "metrics": {"accuracy": a}} for s, e, a in history]),
        config={"val_set": config_val},
    )
    return RunResult(run_id=f"{method}-s{seed}", kind="train", task="si-nli", model="e5", method=method, seed=seed,
                     main_metric="accuracy", main=history[-1][2], metrics={}, cost={}, predictions=None,
                     degenerate=False, record=record, val_set=val_set)


def _curve_group(method: str, runs: list[RunResult], view: str = "si-nli") -> Group:
    return Group(task="si-nli", model="e5", method=method, kind="train", runs=runs, main_metric="accuracy",
                 mean=sum(r.main for r in runs) / len(runs), std=None, val_set=runs[0].val_set, view=view)


def test_learning_curves_average_the_seeds_at_epochs_read_from_the_steps():
    from slopeft.reporting.plots import curve_panels

    # Seed 1 was recorded before the fix: its last evaluation (step 741 of 247 per epoch) says "epoch 2".
    lora = _curve_group("lora", [_evaluated("lora", 1, [(247, 1, 0.40), (494, 2, 0.50), (741, 2, 0.56)]),
                                 _evaluated("lora", 2, [(247, 1.0, 0.44), (494, 2.0, 0.52), (741, 3.0, 0.54)])])
    once = _curve_group("bitfit", [_evaluated("bitfit", 1, [(741, 3.0, 0.5)])])  # scored once: no curve
    (curve,) = curve_panels(_results([lora, once]))["si-nli"]
    assert curve.epochs == [1.0, 2.0, 3.0] and curve.seeds == 2
    assert curve.scores == pytest.approx([0.42, 0.51, 0.55])


def test_an_extra_validation_set_has_no_curve_and_a_grid_without_histories_no_figure(tmp_path):
    from slopeft.reporting.plots import curve_panels, plot_curves

    # RTE scored on its MT validation every epoch and on the HT one at the end: the history is the MT set's.
    extra = _curve_group("lora", [_evaluated("lora", 1, [(10, 1.0, 0.5), (20, 2.0, 0.6)], val_set="human",
                                             config_val="machine")], view="si-nli (validation human)")
    assert curve_panels(_results([extra])) == {}
    assert plot_curves(_results([extra]), tmp_path) is None
    trained = _curve_group("lora", [_evaluated("lora", 1, [(10, 1.0, 0.5), (20, 2.0, 0.6)])])
    plot = plot_curves(_results([trained, extra]), tmp_path)
    assert plot.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "not evaluated per epoch" in plot.title


def test_the_costs_plot_shows_cpu_time_and_no_bar_where_no_cpu_time_was_recorded(tmp_path):
    import slopeft.reporting.plots as plots

    new = _group("si-nli", "lora", 0.5)
    new.runs[0].cost.update(train_cpu_seconds=900.0, train_seconds=1500.0)
    old = _group("si-nli", "full", 0.5)
    old.runs[0].cost.update(train_seconds=7000.0)  # a record from before train_cpu_seconds: wall time only
    captured = {}
    real_save = plots._save

    def save(fig, out_dir, name):  # the bars as drawn, read back from the figure before it is saved
        ax = fig.axes[0]
        captured["bars"] = [p.get_width() for p in ax.patches]
        captured["texts"] = [t.get_text().strip() for t in ax.texts]
        return real_save(fig, out_dir, name)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "_save", save)
        plots.plot_costs(_results([new, old]), tmp_path)
    assert captured["bars"] == [900.0, 0.0] and captured["texts"] == ["not recorded"]
