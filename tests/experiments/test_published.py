"""Published results (``results:``): records and predictions committed with the project, no weights;
a run published there is done on any machine; the store and the report are rebuilt from them."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from slopeft.errors import ConfigError
from slopeft.experiments.grid import expand, grid_from_dict, load_grid
from slopeft.experiments.published import publish, published_record
from slopeft.experiments.runner import estimate_remaining, grid_status, import_results, prepare
from slopeft.experiments.store import ResultsStore
from tests.experiments.smoke import REPO, run_grid, share_tiny_models, slopeft


def _grid_file(tmp_path, results):
    grid = {
        "name": "published",
        "results": str(results),
        "models": ["tiny:bert"],
        "tasks": ["slo-superglue/cb"],
        "methods": ["lora", "bitfit"],
        "seeds": [1],
        "baselines": ["majority"],
        "training": {"epochs": 1, "max_train_examples": 16, "max_eval_examples": 12, "max_length": 48},
    }
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def test_published_runs_are_done_on_a_fresh_machine_and_rebuild_the_store(tmp_path, grid_env, shared_models):
    import subprocess

    results = tmp_path / "results" / "published"
    grid_file = _grid_file(tmp_path, results)
    first_out = tmp_path / "machine-a"
    share_tiny_models(first_out, shared_models)
    done = run_grid(first_out, grid_env, grid_file)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = expand(load_grid(grid_file)).runs
    assert len(runs) == 3
    for run in runs:
        folder = results / run.run_id
        assert sorted(p.name for p in folder.iterdir()) == ["record.json", "val_predictions.json"]
        assert published_record(results, run.run_id)["run_id"] == run.run_id
    # no weights are published
    assert not any(p.suffix in (".safetensors", ".bin", ".pt") for p in results.rglob("*"))

    # A second machine with only the committed results trains nothing.
    second_out = tmp_path / "machine-b"
    share_tiny_models(second_out, shared_models)
    again = run_grid(second_out, grid_env, grid_file)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "3 already done, 0 to run" in again.stderr.replace("\n", " ")
    assert not (second_out / "runs").exists() or not any((second_out / "runs").iterdir())
    rows = ResultsStore(second_out / "results.sqlite").rows()
    assert {r["run_id"] for r in rows if r["status"] == "completed"} == {r.run_id for r in runs}
    assert all(str(results) in r["run_dir"] for r in rows)

    # The store is rebuilt from the records alone, and the report reads them (predictions included).
    third_out = tmp_path / "machine-c"
    assert import_results(load_grid(grid_file, third_out)) == 3
    report = subprocess.run(
        slopeft("report", "--grid", grid_file, "--grid-out", tmp_path / "machine-d", "--out", tmp_path / "rep"),
        env=grid_env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert "lora" in json.dumps(summary) and "bitfit" in json.dumps(summary)


def test_a_finished_but_unpublished_run_is_published_when_the_runner_next_looks(tmp_path):
    results = tmp_path / "results"
    grid = load_grid(_grid_file(tmp_path, results), tmp_path / "out")
    expansion = expand(grid)
    store = prepare(grid, expansion)
    run = expansion.runs[0]
    run_dir = grid.runs_dir / run.run_id
    run_dir.mkdir(parents=True)
    (run_dir / "val_predictions.json").write_text('{"0": "neutral"}\n')
    (run_dir / "record.json").write_text(json.dumps({"run_id": run.run_id, "status": "completed"}))
    (run_dir / "adapter").mkdir()
    (run_dir / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    assert import_results(grid) == 1
    assert published_record(results, run.run_id) is not None
    assert not (results / run.run_id / "adapter").exists()
    assert store.statuses()[run.run_id] == "completed"
    # an unfinished record is never published
    other = grid.runs_dir / "other"
    other.mkdir()
    (other / "record.json").write_text(json.dumps({"status": "running"}))
    assert not publish(other, results, "other")
    shutil.rmtree(other)


def test_published_records_that_do_not_read_as_their_runs_stop_the_grid_and_are_left_unchanged(tmp_path):
    """Cut short, merge-conflicted, another run's, not completed: each is named, and neither the store
    import, the status nor (through the same check) a grid run or report goes on as if it were missing."""
    results = tmp_path / "results"
    grid = load_grid(_grid_file(tmp_path, results), tmp_path / "out")
    runs = expand(grid).runs
    template = json.loads(next((REPO / "results" / "study").glob("si-nli-e5-small-multilingual-lora-s1-*/record.json"))
                          .read_text())
    text = json.dumps(template, indent=2)
    other_run = {**template, "run_id": runs[2].run_id}
    damage = {
        runs[0].run_id: text[: len(text) // 2],  # cut short
        runs[1].run_id: "<<<<<<< HEAD\n" + text + "\n=======\n" + text + "\n>>>>>>> other\n",  # a merge
        runs[2].run_id: json.dumps(template),  # another run's record in this run's folder
    }
    for run_id, content in damage.items():
        (results / run_id).mkdir(parents=True)
        (results / run_id / "record.json").write_text(content)
    for check in (import_results, grid_status):
        with pytest.raises(ConfigError) as refused:
            check(grid)
        message = str(refused.value)
        assert message.startswith("3 published record(s) do not read as their run's finished record")
        assert all(run_id in message for run_id in damage) and "git checkout" in message
        assert "not JSON" in message and f"holds the record of run {template['run_id']!r}" in message
    assert all((results / run_id / "record.json").read_text() == content for run_id, content in damage.items())
    # Mended, they count as done; a record that is its run's but not completed is still refused.
    for run in runs:
        (results / run.run_id / "record.json").write_text(json.dumps({**other_run, "run_id": run.run_id}))
    assert import_results(grid) == 3
    (results / runs[0].run_id / "record.json").write_text(json.dumps({**template, "run_id": runs[0].run_id,
                                                                       "status": "running"}))
    with pytest.raises(ConfigError, match="its status is 'running'"):
        grid_status(grid)


def test_grid_status_prices_the_runs_still_to_train_from_the_finished_ones(tmp_path):
    from slopeft.experiments.published import publish_failure

    results = tmp_path / "results"
    grid = load_grid(_grid_file(tmp_path, results), tmp_path / "out")
    runs = {run.method: run for run in expand(grid).runs}  # majority, lora, bitfit
    template = json.loads(next((REPO / "results" / "study").glob("si-nli-e5-small-multilingual-lora-s1-*/record.json"))
                          .read_text())

    def published(run, **cost):
        (results / run.run_id).mkdir(parents=True)
        record = {**template, "run_id": run.run_id, "kind": run.kind, "cost": {**template["cost"], **cost}}
        (results / run.run_id / "record.json").write_text(json.dumps(record))

    nothing_done = estimate_remaining(grid, grid_status(grid)[0])
    assert (nothing_done.estimated, nothing_done.unknown) == (0, 3)
    published(runs["lora"], train_cpu_seconds=100.0)
    cost = estimate_remaining(grid, grid_status(grid)[0])
    # bitfit: no finished bitfit run, priced as the task and model's (lora's); majority: no finished baseline
    assert (cost.cpu_seconds, cost.estimated, cost.unknown, cost.runs) == (100.0, 1, 1, 2)
    published(runs["majority"], wall_seconds=4.0)
    assert estimate_remaining(grid, grid_status(grid)[0]).cpu_seconds == 100.0  # majority is done now
    publish_failure(results, runs["bitfit"].run_id, {"error": "The loss became nan"})  # not trained again
    assert estimate_remaining(grid, grid_status(grid)[0]).runs == 0


def test_grid_status_and_import_read_each_published_record_once(tmp_path, monkeypatch):
    from pathlib import Path

    results = tmp_path / "results"
    grid = load_grid(_grid_file(tmp_path, results), tmp_path / "out")
    template = json.loads(next((REPO / "results" / "study").glob("si-nli-e5-small-multilingual-lora-s1-*/record.json"))
                          .read_text())
    for run in expand(grid).runs:
        (results / run.run_id).mkdir(parents=True)
        (results / run.run_id / "record.json").write_text(json.dumps({**template, "run_id": run.run_id, "kind": run.kind}))
    reads: list[str] = []
    read_text = Path.read_text

    def counted(path, *args, **kwargs):
        if path.name == "record.json":
            reads.append(path.parent.name)
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted)
    states, expansion = grid_status(grid)
    cost = estimate_remaining(grid, states)
    assert cost.runs == 0 and all(s.state == "done" for s in states)
    assert sorted(reads) == sorted(run.run_id for run in expansion.runs)  # each once: checked, then handed on
    reads.clear()
    assert import_results(grid) == 3
    assert sorted(reads) == sorted(run.run_id for run in expansion.runs)


def test_a_diverged_run_is_published_and_not_trained_again(tmp_path, grid_env, shared_models):
    """Seeded training that diverges diverges again: its failure is a result, like a record."""
    from slopeft.experiments.published import FAILURE, published_failure

    results = tmp_path / "results" / "diverging"
    grid = {
        "name": "diverging",
        "results": str(results),
        "models": ["tiny:bert"],
        "tasks": ["slo-superglue/cb"],
        "methods": [{"label": "full-lr1000", "method": "full", "training": {"learning_rate": 1000.0}}],
        "seeds": [1],
        "training": {"epochs": 3, "batch_size": 4, "warmup_ratio": 0.0, "max_train_examples": 16,
                     "max_eval_examples": 8, "max_length": 48},
    }
    grid_file = tmp_path / "diverging.yaml"
    grid_file.write_text(yaml.safe_dump(grid))
    (run,) = expand(load_grid(grid_file)).runs
    first_out = tmp_path / "machine-a"
    share_tiny_models(first_out, shared_models)
    first = run_grid(first_out, grid_env, grid_file)
    assert first.returncode != 0  # this invocation trained it, and it failed
    failure = published_failure(results, run.run_id)
    assert failure is not None, first.stderr[-3000:]
    assert failure["status"] == "diverged" and "learning rate" in failure["error"]
    assert failure["spec"]["config"]["training"]["learning_rate"] == 1000.0
    assert sorted(p.name for p in (results / run.run_id).iterdir()) == [FAILURE]

    # A second machine with only the published results trains nothing, exits 0, and lists it as failed.
    second_out = tmp_path / "machine-b"
    share_tiny_models(second_out, shared_models)
    again = run_grid(second_out, grid_env, grid_file)
    said = " ".join(again.stderr.split())
    assert again.returncode == 0, said[-3000:]
    assert "1 run(s) diverged before" in said and "--retry-diverged" in said
    assert not (second_out / "runs").exists() or not any((second_out / "runs").iterdir())
    (row,) = ResultsStore(second_out / "results.sqlite").rows()
    assert row["status"] == "failed" and row["error"].startswith("diverged (published in")
    status = subprocess_status(second_out, grid_env, grid_file)
    assert "diverged" in status

    # --retry-diverged trains it again (and it diverges again, seeded).
    retried = run_grid(second_out, grid_env, grid_file, "--retry-diverged")
    assert retried.returncode != 0 and (second_out / "logs" / f"{run.run_id}.log").is_file()


def subprocess_status(out, env, grid_file) -> str:
    import subprocess

    done = subprocess.run(slopeft("grid", "status", grid_file, "--out", out, "--all"), env=env, capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    return " ".join((done.stdout + done.stderr).split())


def test_records_of_runs_this_machine_cannot_train_are_imported_and_not_trained(tmp_path, monkeypatch):
    """The sweep's QLoRA records count on a machine without bitsandbytes (CI, most users): the runs stay
    in the grid, the store holds their records, the runner trains none of them and says why."""
    from rich.console import Console

    from slopeft.experiments.runner import grid_status, run_grid
    from slopeft.methods import qlora as qlora_module

    monkeypatch.setattr(qlora_module, "bitsandbytes_problem", lambda device: "bitsandbytes is not installed")
    grid = load_grid(REPO / "configs" / "grids" / "sweep.yaml", tmp_path / "sweep")
    expansion = expand(grid)
    qlora_runs = [r.run_id for r in expansion.runs if r.method_name == "qlora"]
    assert len(qlora_runs) >= 3 and set(qlora_runs) == set(expansion.not_here)
    assert "pip install bitsandbytes" in expansion.not_here[qlora_runs[0]]
    assert not any("qlora" in what for what, _ in expansion.skipped)
    published = [run_id for run_id in qlora_runs if published_record(grid.results, run_id)]
    assert published, "the sweep has committed QLoRA records"

    import_results(grid)
    rows = {row["run_id"]: row for row in ResultsStore(grid.store_path).rows()}
    assert all(rows[run_id]["status"] == "completed" for run_id in published)

    # An unpublished QLoRA run: the runner leaves it, says why, and the command succeeds.
    only = grid_from_dict(
        {"models": ["tiny:bert"], "tasks": ["slo-superglue/cb"], "methods": ["qlora"], "seeds": [1]},
        default_name="not-here",
    )
    only.out = tmp_path / "not-here"
    printed = Console(record=True, width=200)
    summary = run_grid(only, console=printed)
    (run,) = expand(only).runs
    assert summary.ok and summary.not_here == [(run.run_id, expand(only).not_here[run.run_id])]
    assert not (only.out / "runs" / run.run_id).exists()
    text = printed.export_text()
    assert "1 run(s) not trained on this machine" in text and "pip install bitsandbytes" in text
    (state,) = grid_status(only)[0]
    assert state.state == "pending" and state.note.startswith("not trainable on this machine: qlora needs")
