"""Grid files: validation, expansion, deterministic run ids, overrides, exclusions, skipped combinations."""

from __future__ import annotations

import pytest

from slopeft.errors import ConfigError
from slopeft.experiments.grid import expand, grid_from_dict, load_grid
from slopeft.methods import METHODS
from tests.experiments.smoke import REPO, SMOKE

GRIDS = REPO / "configs" / "grids"


def _grid(**data):
    base = {"models": ["tiny:bert"], "tasks": ["slo-superglue/cb"], "methods": ["lora"], "seeds": [1]}
    return grid_from_dict({**base, **data})


def test_smoke_grid_covers_every_registered_method_on_two_tasks_and_two_seeds():
    grid = load_grid(SMOKE)
    expansion = expand(grid)
    assert len(grid.tasks) == 2 and grid.seeds == [1, 2]
    trained = {(r.task, r.method_name) for r in expansion.runs if r.kind == "train"}
    skipped = {what for what, _ in expansion.skipped}
    for task in grid.tasks:
        for method in METHODS.names():
            # every method runs, or is skipped with the method's own reason (e.g. qlora without bitsandbytes)
            assert (task, method) in trained or f"{method} on {task} with tiny:bert" in skipped
    assert all(why for _, why in expansion.skipped)
    for task, method in trained:
        seeds = sorted(r.seed for r in expansion.runs if (r.task, r.method_name) == (task, method))
        assert seeds == [1, 2]
    baselines = [r for r in expansion.runs if r.kind == "baseline"]
    assert sorted(r.task for r in baselines) == sorted(grid.tasks)


def test_run_ids_are_deterministic_unique_and_follow_the_configuration():
    first = [r.run_id for r in expand(load_grid(SMOKE)).runs]
    assert first == [r.run_id for r in expand(load_grid(SMOKE)).runs]
    assert len(set(first)) == len(first)
    a = expand(_grid()).runs[0]
    assert a.run_id.startswith("cb-tiny-bert-lora-s1-")
    assert expand(_grid()).runs[0].run_id == a.run_id
    # any setting, including a default made explicit with another value, is a new run
    assert expand(_grid(training={"epochs": 2})).runs[0].run_id != a.run_id
    assert expand(_grid(method_options={"lora": {"r": 4}})).runs[0].run_id != a.run_id
    # the output folder and data folder are not part of the identity
    assert expand(_grid(data_dir="/elsewhere", out="x")).runs[0].run_id == a.run_id
    # a label is cosmetic; the same settings under two labels would be the same run: an error
    with pytest.raises(ConfigError, match="same run"):
        expand(_grid(methods=["lora", {"label": "lora-again", "method": "lora"}]))


def test_run_ids_survive_new_settings_at_their_old_behaviour():
    import dataclasses

    from slopeft.config import TrainingConfig
    from slopeft.experiments.run_ids import HASH_REFERENCE, run_config_hash

    # every training setting is listed, so a new one cannot silently change every committed run id
    assert set(HASH_REFERENCE["training"]) == {f.name for f in dataclasses.fields(TrainingConfig)}
    from slopeft.config import RunConfig

    identity = {"task", "model", "method", "seed", "training", "method_options", "output", "data_dir"}
    assert {f.name for f in dataclasses.fields(RunConfig)} - identity <= set(HASH_REFERENCE)
    # The learning rate is pinned at the LoRA recipe's value when this id was frozen (5e-4), so that a
    # new recipe does not move it: this test pins the hash, test_frozen_run_ids.py the grids' ids.
    run = expand(_grid(training={"learning_rate": 5e-4})).runs[0]
    # frozen: these ids name the study's committed results; a change here orphans them
    assert run.run_id == "cb-tiny-bert-lora-s1-" + run.config_hash[:10]
    assert run.config_hash == run_config_hash(run.config)
    assert run.config_hash.startswith("df641092cc"), run.config_hash
    with_new_setting = {**run.config, "training": {**run.config["training"], "a_later_setting": 1}}
    assert run_config_hash(with_new_setting) != run.config_hash
    try:
        HASH_REFERENCE["training"]["a_later_setting"] = 1  # added at the value that keeps the old behaviour
        assert run_config_hash(with_new_setting) == run.config_hash
    finally:
        del HASH_REFERENCE["training"]["a_later_setting"]


def test_variants_overrides_and_exclusions():
    grid = _grid(
        models=["tiny:bert", "tiny:gemma"],
        tasks=["slo-superglue/cb", "slo-superglue/rte"],
        methods=[
            "lora",
            {
                "label": "lora-r16",
                "method": "lora",
                "options": {"r": 16},
                "training": {"learning_rate": 1e-4},
            },
        ],
        seeds=[1, 2],
        training={"epochs": 1, "max_length": 128},
        method_options={"lora": {"r": 4}},
        overrides=[
            {"match": {"model": "tiny:gemma"}, "training": {"max_length": 64}, "method_options": {"lora": {"alpha": 8}}}
        ],
        exclude=[{"task": "*rte", "model": "tiny:gemma"}, {"method": "lora-r16", "seed": "2"}],
    )
    runs = expand(grid).runs
    by = {(r.task, r.model, r.method, r.seed): r for r in runs}
    # 2 models × 2 tasks × 2 methods × 2 seeds = 16, minus gemma on RTE (4), minus lora-r16 seed 2 elsewhere (3)
    assert len(runs) == 16 - 4 - 3
    assert ("slo-superglue/rte", "tiny:gemma", "lora", 1) not in by
    assert not any(r.method == "lora-r16" and r.seed == 2 for r in runs)
    bert = by[("slo-superglue/cb", "tiny:bert", "lora", 1)].config
    assert bert["method_options"] == {"r": 4} and bert["training"]["max_length"] == 128
    variant = by[("slo-superglue/cb", "tiny:bert", "lora-r16", 1)].config
    assert variant["method_options"] == {"r": 16} and variant["training"]["learning_rate"] == 1e-4
    gemma = by[("slo-superglue/cb", "tiny:gemma", "lora", 1)].config
    assert gemma["training"]["max_length"] == 64 and gemma["method_options"] == {"r": 4, "alpha": 8}


def test_incompatible_combinations_are_skipped_with_the_reason():
    expansion = expand(_grid(tasks=["slo-superglue/cb", "mt/sl-en"], models=["tiny:bert", "tiny:marian"]))
    kept = {(r.task, r.model) for r in expansion.runs}
    assert ("mt/sl-en", "tiny:bert") not in kept  # an encoder cannot translate
    assert ("mt/sl-en", "tiny:marian") in kept and ("slo-superglue/cb", "tiny:bert") in kept
    assert any("mt/sl-en with tiny:bert" in what and "no head" in why for what, why in expansion.skipped)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"modles": ["x"]}, "Did you mean models"),
        ({"methods": ["loraa"]}, "Unknown method"),
        ({"tasks": ["slo-superglue/nope"]}, "Unknown task"),
        ({"seeds": ["one"]}, "seeds must be integers"),
        ({"training": {"epochz": 1}}, "epochz"),
        ({"method_options": {"lora": {"rank": 4}}}, "rank"),
        ({"models": ["tiny:nope"]}, "Unknown tiny architecture"),
        ({"baselines": ["zero-shot"]}, "need a model"),
        ({"overrides": [{"match": {"modle": "x"}}]}, "modle"),
    ],
)
def test_mistakes_fail_before_anything_runs(data, message):
    with pytest.raises(ConfigError, match=message):
        expand(_grid(**data))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"overrides": [{"match": {"task": "rte"}, "training": {"epochs": 2}}]}, r"overrides\[0\].match.task 'rte'"),
        ({"overrides": [{"match": {"method": ["dora", "ia3"]}, "training": {"epochs": 2}}]}, r"method \['dora', 'ia3'\]"),
        ({"overrides": [{"match": {"model": "tiny:gemma"}, "training": {"epochs": 2}}]}, "model 'tiny:gemma'"),
        ({"exclude": [{"seed": "3"}]}, r"exclude\[0\].seed '3'"),
        ({"exclude": [{"kind": "baseline"}]}, "kind 'baseline'"),
    ],
)
def test_a_match_that_names_nothing_in_the_grid_is_an_error(entry, message):
    """A misspelt override would leave every run unchanged: found out only after the training."""
    with pytest.raises(ConfigError, match=message) as raised:
        _grid(tasks=["slo-superglue/cb", "slo-superglue/copa"], **entry)
    assert "would change nothing" in str(raised.value)


def test_matches_on_globs_baselines_and_their_seed_are_accepted():
    grid = _grid(
        methods=["lora", "bitfit"],
        baselines=["majority"],
        overrides=[
            # one alternative of a list may name what this grid lacks (dora)
            {"match": {"task": "slo-superglue/*", "method": ["lora", "bit*", "dora"]}, "training": {"epochs": 2}},
            {"match": {"model": "baseline", "seed": "0", "kind": "baseline"}, "training": {"max_eval_examples": 5}},
        ],
        exclude=[{"method": "majority", "kind": "train"}],
    )
    runs = expand(grid).runs
    assert {r.config["training"]["epochs"] for r in runs if r.kind == "train"} == {2}


@pytest.mark.parametrize("name", sorted(path.stem for path in GRIDS.glob("*.yaml")))
def test_shipped_grids_expand(name):
    grid = load_grid(GRIDS / f"{name}.yaml")
    expansion = expand(grid)
    assert expansion.runs
    if name != "epochs-probe":  # a probe of full fine-tuning alone; the study holds its baselines
        assert any(r.kind == "baseline" for r in expansion.runs)
    assert {r.method_name for r in expansion.runs if r.kind == "train"} <= set(METHODS.names())


def test_reference_grids_ask_the_same_questions():
    full, study = (load_grid(GRIDS / f"{n}.yaml") for n in ("full-study", "study"))
    tasks = {"slo-superglue/" + t for t in ("boolq", "cb", "copa", "multirc", "rte", "wsc")} | {
        "si-nli",
        "mt/sl-en",
        "mt/en-sl",
    }
    assert set(full.tasks) == tasks and set(study.tasks) == tasks
    assert len(full.seeds) == 3 and len(study.seeds) == 3
    assert {m.method for m in full.methods} == set(METHODS.names())
    assert {m.method for m in study.methods} == set(METHODS.names())
    assert set(study.models) == {"e5-small-multilingual", "gemma-3-270m"}


def test_a_sweep_entry_expands_into_one_labelled_variant_per_combination():
    grid = _grid(methods=[{"method": "lora", "sweep": {"learning_rate": [1e-3, 2e-3], "r": [4, 8]}}])
    runs = expand(grid).runs
    assert [r.method for r in runs] == ["lora-lr0.001-r4", "lora-lr0.001-r8", "lora-lr0.002-r4", "lora-lr0.002-r8"]
    assert [(r.config["training"]["learning_rate"], r.config["method_options"]["r"]) for r in runs] == [
        (1e-3, 4), (1e-3, 8), (2e-3, 4), (2e-3, 8)
    ]
    with pytest.raises(ConfigError, match="sweep.learning_rate must be a non-empty list"):
        _grid(methods=[{"method": "lora", "sweep": {"learning_rate": 1e-3}}])
    with pytest.raises(ConfigError, match="Unknown setting lora.rank"):
        expand(_grid(methods=[{"method": "lora", "sweep": {"rank": [4]}}]))


def test_overrides_set_each_tasks_training_and_validation_sets_for_runs_and_baselines():
    grid = _grid(
        tasks=["slo-superglue/rte", "slo-superglue/wsc"],
        baselines=["majority"],
        overrides=[{"match": {"task": "slo-superglue/rte"}, "train_set": "machine", "val_set": "machine",
                    "extra_val_sets": ["human"]}],
    )
    runs = {(r.kind, r.task): r for r in expand(grid).runs}
    rte = runs[("train", "slo-superglue/rte")].config
    assert (rte["train_set"], rte["val_set"], rte["extra_val_sets"]) == ("machine", "machine", ["human"])
    wsc = runs[("train", "slo-superglue/wsc")].config
    assert (wsc["train_set"], wsc["val_set"], wsc["extra_val_sets"]) == (None, None, [])
    baseline = runs[("baseline", "slo-superglue/rte")].config
    assert (baseline["train_set"], baseline["val_set"], baseline["extra_val_sets"]) == ("machine", "machine", ["human"])
    assert "val_set" not in runs[("baseline", "slo-superglue/wsc")].config  # ids of older baselines stay valid
    with pytest.raises(ConfigError, match="slo-superglue/wsc has no validation set 'machine'"):
        expand(_grid(tasks=["slo-superglue/wsc"], val_set="machine"))


def test_prompting_baselines_name_their_model_and_match_like_runs():
    grid = _grid(
        models=["tiny:gemma"],
        tasks=["slo-superglue/cb", "mt/sl-en"],
        baselines=["majority", "copy-source", {"strategy": "zero-shot", "model": "tiny:gemma"},
                   {"strategy": "few-shot", "model": "tiny:gemma", "shots": 2}],
        exclude=[{"kind": "baseline", "model": "tiny:gemma", "task": ["slo-superglue/*", "si-nli"]}],
    )
    baselines = [(r.task, r.method, r.model) for r in expand(grid).runs if r.kind == "baseline"]
    assert sorted(baselines) == [
        ("mt/sl-en", "copy-source", "baseline"),
        ("mt/sl-en", "few-shot-2", "tiny:gemma"),
        ("mt/sl-en", "zero-shot", "tiny:gemma"),
        ("slo-superglue/cb", "majority", "baseline"),
    ]
    few = next(r for r in expand(grid).runs if r.method == "few-shot-2")
    assert few.config["shots"] == 2 and few.config["model"] == "tiny:gemma"
    assert few.run_id.startswith("mt-sl-en-tiny-gemma-few-shot-2-s0-")
    with pytest.raises(ConfigError, match="prompting baselines need a model"):
        _grid(baselines=["zero-shot"])
    with pytest.raises(ConfigError, match="shots applies to the few-shot baseline only"):
        _grid(baselines=[{"strategy": "zero-shot", "model": "tiny:gemma", "shots": 2}])


def test_seed_first_order_runs_every_method_once_before_any_second_seed():
    base = {"methods": ["lora", "bitfit"], "seeds": [1, 2], "tasks": ["slo-superglue/cb", "slo-superglue/rte"]}
    default = [(r.task[-3:], r.method, r.seed) for r in expand(_grid(**base)).runs]
    assert default[:4] == [("/cb", "lora", 1), ("/cb", "lora", 2), ("/cb", "bitfit", 1), ("/cb", "bitfit", 2)]
    seed_first = [(r.task[-3:], r.method, r.seed) for r in expand(_grid(**base, order="seed-first")).runs]
    assert seed_first == [
        ("/cb", "lora", 1), ("/cb", "bitfit", 1), ("/cb", "lora", 2), ("/cb", "bitfit", 2),
        ("rte", "lora", 1), ("rte", "bitfit", 1), ("rte", "lora", 2), ("rte", "bitfit", 2),
    ]
    assert {r.run_id for r in expand(_grid(**base)).runs} == {r.run_id for r in expand(_grid(**base, order="seed-first")).runs}


def test_seed_first_order_keeps_the_task_order_when_a_prompting_baseline_names_a_later_model():
    # the prompting baselines come first, but their model's training runs keep their task's place
    grid = _grid(
        models=["tiny:bert", "tiny:gemma"], tasks=["slo-superglue/cb", "mt/sl-en"], methods=["lora"], order="seed-first",
        baselines=["majority", {"strategy": "zero-shot", "model": "tiny:gemma"}],
        exclude=[{"model": "tiny:gemma", "task": "slo-superglue/cb"}, {"model": "tiny:bert", "task": "mt/sl-en"},
                 {"kind": "baseline", "task": "mt/sl-en", "method": "majority"}],
    )
    order = [(r.kind, r.task, r.model) for r in expand(grid).runs]
    assert order[-2:] == [("train", "slo-superglue/cb", "tiny:bert"), ("train", "mt/sl-en", "tiny:gemma")]
    assert {kind for kind, _, _ in order[:-2]} == {"baseline"}


def test_seed_first_order_follows_the_tasks_across_models():
    # gemma trains only translation, listed between the encoder's tasks: it runs in the task's place,
    # not after every task of the model listed before it
    grid = _grid(
        models=["tiny:bert", "tiny:gemma"], tasks=["slo-superglue/cb", "mt/sl-en", "slo-superglue/rte"],
        methods=["lora"], seeds=[1, 2], order="seed-first",
        exclude=[{"model": "tiny:gemma", "task": "slo-superglue/*"}, {"model": "tiny:bert", "task": "mt/sl-en"}],
    )
    order = [(r.task[-3:], r.model[5:], r.seed) for r in expand(grid).runs]
    assert order == [
        ("/cb", "bert", 1), ("/cb", "bert", 2), ("-en", "gemma", 1), ("-en", "gemma", 2),
        ("rte", "bert", 1), ("rte", "bert", 2),
    ]


def test_the_grid_file_is_read_like_a_run_config():
    # every key a grid may hold is a documented field; the entries are dataclasses too
    from slopeft.config import field_docs
    from slopeft.experiments.grid import GridFile, MethodEntry, OverrideEntry, PatternEntry

    assert {"models", "tasks", "methods", "seeds", "overrides", "results", "recipes"} <= set(field_docs(GridFile))
    assert {"method", "label", "options", "training", "sweep"} == {f for f in MethodEntry.__dataclass_fields__}
    assert set(PatternEntry.__dataclass_fields__) == {"model", "task", "method", "seed", "kind"}
    assert "method_options" in OverrideEntry.__dataclass_fields__
    with pytest.raises(ConfigError, match=r"Unknown setting grid.resources.gpus. Did you mean num_gpus"):
        _grid(resources={"gpus": 1})
    with pytest.raises(ConfigError, match=r"Unknown setting methods entry.optoins"):
        _grid(methods=[{"method": "lora", "optoins": {"r": 4}}])
    # overrides' method options are keyed by method, like the top level's
    with pytest.raises(ConfigError, match=r"overrides\[0\].method_options is keyed by method"):
        _grid(overrides=[{"match": {"model": "tiny:bert"}, "method_options": {"alpha": 8}}])
    keyed = _grid(
        methods=["lora", "dora"], overrides=[{"match": {"model": "tiny:bert"}, "method_options": {"lora": {"alpha": 8}}}]
    )
    options = {r.method: r.config["method_options"] for r in expand(keyed).runs}
    assert options["lora"]["alpha"] == 8 and options["dora"].get("alpha") != 8


def test_the_example_in_the_grids_readme_is_a_valid_grid():
    import re

    import yaml

    text = (GRIDS / "README.md").read_text(encoding="utf-8")
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    runs = expand(grid_from_dict(example)).runs
    assert not [r for r in runs if r.model == "gams-1b" and r.method == "lora-r16" and r.seed in (2, 3)]
    assert [r for r in runs if r.model == "gams-1b" and r.method == "lora-r16" and r.seed == 1]
