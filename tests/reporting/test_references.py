"""Our numbers beside the published reference points: the same system where the grid has it."""

from __future__ import annotations

from types import SimpleNamespace

from slopeft.reporting.references import compare_with_references


def _majority(train_set: str, accuracy: float) -> SimpleNamespace:
    run = SimpleNamespace(metrics={"accuracy": accuracy}, record=SimpleNamespace(val_examples=29, eval_limit=None))
    return SimpleNamespace(
        task="slo-superglue/rte",
        kind="baseline",
        method="majority",
        model="baseline",
        train_set=train_set,
        on_leaderboard_val=True,
        ci=None,
        runs=[run],
        seeds=1,
        degenerate_runs=1,
    )


def _rte_majority_row(groups: list[SimpleNamespace]):
    (row,) = [
        c
        for c in compare_with_references(SimpleNamespace(groups=groups))
        if c.reference.task == "slo-superglue/rte" and c.reference.system.startswith("majority")
    ]
    return row


def test_a_majority_reference_is_compared_with_our_majority_of_the_same_training_set():
    # The reference is the majority class of the human-translated train (entailment, 0.414 of the
    # 29 validation rows); the machine-translated train's majority is the other class.
    row = _rte_majority_row([_majority("machine", 0.586), _majority("human", 0.414)])
    assert row.ours == 0.414 and "trained on" not in row.note


def test_ours_on_another_training_set_is_used_only_when_alone_and_then_said():
    row = _rte_majority_row([_majority("machine", 0.586)])
    assert row.ours == 0.586
    assert "ours trained on the machine training set, the reference on the human one" in row.note
