"""Task views in reports: a run scored on several validation sets appears once per set; intervals over
seeds; every method tested against full fine-tuning; board averages on the leaderboard's sets only."""

from __future__ import annotations

import random

import pytest

from slopeft.records import RunMetrics, RunRecord, write_predictions, write_record
from slopeft.reporting.results import summarise, task_view
from slopeft.reporting.stats import seed_interval
from slopeft.tasks import get_task

RTE = "slo-superglue/rte"


def _predictions(examples, accuracy: float, seed: int) -> dict[int, str]:
    rng = random.Random(seed)
    labels = sorted({e.label for e in examples})
    return {
        e.idx: e.label if rng.random() < accuracy else next(x for x in labels if x != e.label)
        for e in examples
    }


def _accuracy(examples, predictions) -> float:
    return sum(predictions[e.idx] == e.label for e in examples) / len(examples)


def _row(tmp_path, method: str, seed: int, accuracy: float, machine, human) -> dict:
    """A finished run trained on RTE's machine-translated set, scored on its machine-translated validation
    and, as an extra set, on the leaderboard's human-translated one."""
    run_id = f"rte-{method}-s{seed}"
    run_dir = tmp_path / run_id
    on_machine = _predictions(machine, accuracy, seed)
    on_human = _predictions(human, accuracy - 0.05, seed + 100)
    write_predictions(run_dir, on_machine)
    write_predictions(run_dir, on_human, "human")
    human_score = _accuracy(human, on_human)
    record = RunRecord(
        run_id=run_id,
        kind="train",
        config={"task": RTE, "train_set": "machine", "val_set": "machine", "extra_val_sets": ["human"]},
        metrics=RunMetrics(
            val={"accuracy": _accuracy(machine, on_machine)},
            main_metric="accuracy",
            main=_accuracy(machine, on_machine),
            extra_val={
                "human": {"metrics": {"accuracy": human_score}, "main": human_score, "examples": len(human)}
            },
        ),
        cost={"trainable": 1000, "train_cpu_seconds": 12.0},
    )
    data = write_record(run_dir, record)
    return {
        "status": "completed",
        "record": data,
        "run_id": run_id,
        "run_dir": str(run_dir),
        "kind": "train",
        "task": RTE,
        "model": "e5",
        "method": method,
        "seed": seed,
    }


def test_task_views_name_only_what_is_not_the_default():
    assert task_view(RTE, None, None) == ("human", "human", RTE)
    assert task_view(RTE, "machine", "human")[2] == f"{RTE} (train machine)"
    assert task_view(RTE, "machine", "machine")[2] == f"{RTE} (train machine, validation machine)"
    assert task_view("si-nli", None, None)[2] == "si-nli"


def test_seed_interval_is_the_t_interval():
    low, high = seed_interval([0.5, 0.6, 0.7])
    # mean 0.6, s = 0.1, t(0.975, 2 d.o.f.) = 4.302653: half-width 4.302653 * 0.1 / sqrt(3)
    assert (low, high) == pytest.approx((0.6 - 0.248414, 0.6 + 0.248414), abs=1e-6)
    assert seed_interval([0.5]) is None


def test_extra_validation_sets_are_views_of_their_own(tmp_path, data_root):
    machine = get_task(RTE, data_root, val_set="machine").examples("val")
    human = get_task(RTE, data_root).examples("val")
    rows = [
        _row(tmp_path, method, seed, accuracy, machine, human)
        for method, accuracy in (("full", 0.75), ("lora", 0.7), ("bitfit", 0.55))
        for seed in (1, 2, 3)
    ]
    results = summarise(rows, "views", data_dir=str(data_root), draws=200)

    views = results.tasks()
    assert views == [f"{RTE} (train machine)", f"{RTE} (train machine, validation machine)"]
    on_human = {g.method: g for g in results.by_task(f"{RTE} (train machine)")}
    on_machine = {g.method: g for g in results.by_task(f"{RTE} (train machine, validation machine)")}
    for method in ("full", "lora", "bitfit"):
        # each view's mean is that set's scores, recomputed from the predictions on that set
        assert on_human[method].mean == pytest.approx(
            sum(r["record"]["metrics"]["extra_val"]["human"]["main"] for r in rows if r["method"] == method)
            / 3
        )
        assert on_machine[method].mean == pytest.approx(
            sum(r["record"]["metrics"]["main"] for r in rows if r["method"] == method) / 3
        )
        for group, examples in ((on_human[method], human), (on_machine[method], machine)):
            assert group.ci.point["accuracy"] == pytest.approx(group.mean)
            assert len(group.runs[0].predictions) == len(examples)
            assert group.seed_interval == pytest.approx(seed_interval([r.main for r in group.runs]))
    # every method against full fine-tuning, on the same view's draws
    assert on_machine["full"].vs_reference is None and on_machine["full"].reference_method is None
    for method in ("lora", "bitfit"):
        test = on_machine[method].vs_reference
        assert on_machine[method].reference_method == "full"
        assert test.delta == pytest.approx(on_machine[method].mean - on_machine["full"].mean)
    assert on_machine["bitfit"].vs_reference.p_value < 0.01  # 20 points below on 277 examples x 3 seeds
    # RTE's leaderboard validation is the human-translated one; no board average without the other tasks
    assert on_human["full"].on_leaderboard_val and not on_machine["full"].on_leaderboard_val
    assert results.averages == []


def test_a_sweep_compares_every_setting_with_its_best_full_fine_tuning(tmp_path, data_root):
    """Sweep variants are labelled by their settings (full-lr5e-05): the reference is the best of them."""
    machine = get_task(RTE, data_root, val_set="machine").examples("val")
    human = get_task(RTE, data_root).examples("val")
    rows = []
    for label, accuracy in (("full-lr2e-05", 0.6), ("full-lr5e-05", 0.72), ("lora-lr0.001", 0.75)):
        row = _row(tmp_path, label, 1, accuracy, machine, human)
        row["method_name"] = label.split("-lr")[0]
        rows.append(row)
    results = summarise(rows, "sweep", data_dir=str(data_root), draws=100)
    groups = {g.method: g for g in results.by_task(f"{RTE} (train machine, validation machine)")}
    assert groups["lora-lr0.001"].best_method == "lora-lr0.001"  # the best is not full FT here
    for label in ("full-lr2e-05", "lora-lr0.001"):
        assert groups[label].reference_method == "full-lr5e-05"
        assert groups[label].vs_reference.delta == pytest.approx(groups[label].mean - groups["full-lr5e-05"].mean)
    assert groups["full-lr5e-05"].vs_reference is None


def test_systems_with_different_seeds_are_compared_over_the_seeds_both_have(tmp_path, data_root):
    """Mid-study, LoRA has seeds 1-3 and full FT only seed 1: the paired test pairs seed 1 with seed 1."""
    from slopeft.reporting.report import _test
    from slopeft.reporting.stats import paired_bootstrap

    machine = get_task(RTE, data_root, val_set="machine").examples("val")
    human = get_task(RTE, data_root).examples("val")
    rows = [_row(tmp_path, "full", 1, 0.75, machine, human)]
    rows += [_row(tmp_path, "lora", seed, accuracy, machine, human) for seed, accuracy in ((1, 0.7), (2, 0.9), (3, 0.9))]
    results = summarise(rows, "partial", data_dir=str(data_root), draws=200)
    groups = {g.method: g for g in results.by_task(f"{RTE} (train machine, validation machine)")}
    test = groups["lora"].vs_reference
    assert test.seeds == (1,)
    lora_1, full_1 = (groups[m].runs[0] for m in ("lora", "full"))
    assert test.delta == pytest.approx(lora_1.main - full_1.main)  # not the mean of 3 seeds against 1
    assert groups["lora"].mean - groups["full"].mean > test.delta + 0.05
    task = get_task(RTE, data_root, val_set="machine")
    expected = paired_bootstrap(task, machine, [lora_1.predictions], [full_1.predictions], draws=200)
    assert (test.low, test.high, test.p_value) == pytest.approx((expected.low, expected.high, expected.p_value))
    assert _test(test).endswith("(seed 1)")
    # LoRA is the best by its mean of 3; full FT against it is matched on seed 1 as well
    assert groups["lora"].best_method == "lora" and groups["full"].vs_best.seeds == (1,)
    assert groups["full"].vs_best.delta == pytest.approx(-test.delta)


def test_report_shows_views_and_the_new_columns(tmp_path, data_root):
    from slopeft.reporting.report import build_report

    machine = get_task(RTE, data_root, val_set="machine").examples("val")
    human = get_task(RTE, data_root).examples("val")
    rows = [
        _row(tmp_path, m, s, a, machine, human) for m, a in (("full", 0.75), ("lora", 0.7)) for s in (1, 2)
    ]
    files = build_report(rows, tmp_path / "report", "views", data_dir=str(data_root), draws=100)
    markdown = files.markdown.read_text()
    assert f"## Task {RTE} (train machine)" in markdown
    assert f"## Task {RTE} (train machine, validation machine)" in markdown
    assert "95% CI over seeds" in markdown and "Δ vs full FT" in markdown and "train CPU s" in markdown


def test_runs_not_trained_in_fp32_are_flagged(tmp_path, data_root):
    from slopeft.reporting.report import _flags

    machine = get_task(RTE, data_root, val_set="machine").examples("val")
    human = get_task(RTE, data_root).examples("val")
    precisions = {"full": (None, "fp32"), "lora": ("bf16", None), "bitfit": ("bf16", "bf16")}  # None: older records
    rows = []
    for method, (first, second) in precisions.items():
        for seed, precision in ((1, first), (2, second)):
            row = _row(tmp_path, method, seed, 0.7, machine, human)
            if precision:
                row["record"]["cost"]["precision"] = precision
            rows.append(row)
    results = summarise(rows, "precisions", data_dir=str(data_root), draws=50)
    flags = {g.method: _flags(g) for g in results.by_task(f"{RTE} (train machine, validation machine)")}
    assert "trained in" not in flags["full"]
    assert "trained in bf16 and fp32 (seeds differ)" in flags["lora"]
    assert "trained in bf16" in flags["bitfit"] and "seeds differ" not in flags["bitfit"]
