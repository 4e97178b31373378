"""The `slopeft` command: subcommand → function map, no logic of its own."""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from slopeft.errors import SlopeftError

# transformers 5 warns about its own deprecated call inside PEFT; it says nothing to a slopeft user.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")


class _WithoutMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


# bitsandbytes, which PEFT imports, tries on CPUs with AVX512_BF16 to fetch an optional 4-bit GEMM
# kernel from the Hub and warns on every import where it cannot (offline, or the kernel's publisher
# not allowlisted); it then runs its own CPU kernels, the ones slopeft's QLoRA was measured on. The
# warning says nothing a slopeft user can act on, so that one message is dropped; bitsandbytes'
# other messages pass.
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    _WithoutMessage("Failed to load CPU gemm_4bit_forward from kernels-community")
)

app = typer.Typer(
    help="Parameter-efficient fine-tuning for Slovene, measured on SloBench.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Find, list and describe SloBench data.", no_args_is_help=True)
submission_app = typer.Typer(help="Check SloBench submission zips.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(submission_app, name="submission")


DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Data root (else $SLOPEFT_DATA, the cache, or a download).", show_default=False
    ),
]
TaskName = Annotated[
    str,
    typer.Option(
        "--task", "-t", help="Task or group (`slopeft data list`), e.g. slo-superglue, si-nli, mt/sl-en."
    ),
]
TrainSrc = Annotated[
    Path | None,
    typer.Option("--train-src", help="MT: your own source-side training file.", show_default=False),
]
TrainTgt = Annotated[
    Path | None,
    typer.Option("--train-tgt", help="MT: the line-aligned target-side file.", show_default=False),
]
TestSrc = Annotated[
    Path | None,
    typer.Option(
        "--test-src",
        help="MT: the leaderboard's test source file (replaces the local FLORES-200 devtest).",
        show_default=False,
    ),
]
Nltk = Annotated[
    str | None,
    typer.Option(
        "--nltk",
        help="MT: the NLTK release whose tokenization the metrics reproduce: 3.6.6 (the official "
        "evaluator's pin, default) or 3.6.5 (its first pin).",
        show_default=False,
    ),
]
TrainSet = Annotated[
    str | None,
    typer.Option(
        "--train-set",
        help="human | machine | combined (SuperGLUE); a folder of <lang>.txt files (MT).",
        show_default=False,
    ),
]


def _console() -> Console:
    # Built per call so the terminal width (COLUMNS) is read when printing, not at import.
    return Console()


def _mount_models() -> None:
    from slopeft.models.cli import app as models_app

    app.add_typer(models_app, name="models")


_mount_models()


def _mount_experiments() -> None:
    from slopeft.experiments.cli import grid_app, results_app
    from slopeft.reporting.cli import report

    app.add_typer(grid_app, name="grid")
    app.add_typer(results_app, name="results")
    app.command("report")(report)


_mount_experiments()


def _mount_serving() -> None:
    from slopeft.serving.cli import serve

    app.command("serve")(serve)


_mount_serving()


@data_app.command("list")
def data_list(data_dir: DataDir = None) -> None:
    """Every task, training set and split with its row count and source."""
    from slopeft.reporting.tables import table
    from slopeft.tasks.inventory import inventory

    found = inventory(data_dir)
    for dataset, where in found.locations.items():
        _console().print(f"[bold]{dataset}[/bold]: {where}", highlight=False)
    _console().print(table("SloBench data", ("task", "train set", "split", "rows", "file"), found.rows))


@data_app.command("sources")
def data_sources() -> None:
    """Where slopeft downloads each dataset from when nothing is local."""
    import slopeft.tasks  # noqa: F401  (the task modules declare the datasets)
    from slopeft.data.catalogue import describe_sources
    from slopeft.reporting.tables import table

    sources = describe_sources()
    columns = list(sources[0]) if sources else []
    _console().print(table("Download sources", columns, [list(s.values()) for s in sources]))


@app.command()
def baseline(
    task: TaskName = "slo-superglue",
    strategy: Annotated[
        str, typer.Option(help="majority | random | stratified | copy-source (MT) | zero-shot | few-shot")
    ] = "majority",
    model: Annotated[
        str | None, typer.Option(help="zero-/few-shot: a causal or seq2seq model (alias, Hub id or folder).")
    ] = None,
    shots: Annotated[int, typer.Option(min=1, help="few-shot: demonstrations per prompt.")] = 3,
    max_length: Annotated[int, typer.Option(min=8, help="zero-/few-shot: longest prompt in tokens.")] = 512,
    batch_size: Annotated[int, typer.Option(min=1, help="zero-/few-shot: examples per forward pass.")] = 8,
    split: Annotated[str, typer.Option(help="val (scored) or test (unlabelled)")] = "val",
    train_set: TrainSet = None,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    data_dir: DataDir = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Folder for predictions and metrics (default: outputs/baselines/<task>/<strategy>-<split>)"
        ),
    ] = None,
    submission: Annotated[Path | None, typer.Option(help="Also write a leaderboard zip here.")] = None,
    train_src: TrainSrc = None,
    train_tgt: TrainTgt = None,
    test_src: TestSrc = None,
    nltk: Nltk = None,
) -> None:
    """Predictions, metrics and a submission zip from a model-free baseline."""
    from slopeft.evaluation.workflows import baseline_workflow, translation_options
    from slopeft.files import check_output

    if output is not None:
        check_output(output, "folder", "--output")
    if submission is not None:
        check_output(submission, "file", "--submission")

    options = translation_options(task, train_src, train_tgt, test_src, nltk)
    prompting = {"model": model, "max_length": max_length, "batch_size": batch_size}
    if strategy == "few-shot":
        prompting["shots"] = shots
    result = baseline_workflow(
        task,
        strategy,
        split,
        train_set,
        seed,
        data_dir,
        output,
        submission,
        options,
        prompting if model is not None else None,
    )
    _print_result(result)


@app.command()
def score(
    task: TaskName,
    predictions: Annotated[Path, typer.Option(help="Submission zip or folder of prediction files.")],
    split: Annotated[str, typer.Option(help="The labelled split the predictions are for.")] = "val",
    data_dir: DataDir = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the metrics as JSON.")] = None,
    nltk: Nltk = None,
) -> None:
    """Score predictions locally with the leaderboard's metric code."""
    from slopeft.evaluation.workflows import score_workflow, translation_options
    from slopeft.files import check_output

    if json_out:
        check_output(json_out, "file", "--json")

    result = score_workflow(task, predictions, split, data_dir, translation_options(task, nltk=nltk))
    _print_result(result)
    if json_out:
        from slopeft.files import write_text_atomic

        write_text_atomic(json_out, json.dumps(result.as_json(), indent=2, ensure_ascii=False) + "\n")


@submission_app.command("check")
def submission_check(
    zip_path: Annotated[Path, typer.Argument(help="The submission zip.")],
    task: TaskName,
    data_dir: DataDir = None,
    test_src: TestSrc = None,
    nltk: Nltk = None,
) -> None:
    """Validate a submission zip against the test inputs as the leaderboard's evaluator reads it (names,
    idx coverage, labels, nesting, line count, byte-order marks, lines its NLTK fails on)."""
    from slopeft.evaluation.workflows import check_workflow, translation_options

    summary = check_workflow(task, zip_path, data_dir, translation_options(task, test_src=test_src, nltk=nltk))
    _console().print(f"[green]OK[/green] {zip_path}: {summary}")


RunDir = Annotated[Path, typer.Option("--run", help="A run folder written by `slopeft train`.")]


@app.command()
def train(
    task: Annotated[
        str | None, typer.Option("--task", "-t", help="Task, e.g. si-nli (`slopeft data list` shows them).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model alias, Hub id or folder.")] = None,
    method: Annotated[
        str | None, typer.Option(help="full, lora, dora, bitfit, ... (`slopeft methods`).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="A run YAML file.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override: lora.r=16, training.epochs=5 ...")
    ] = None,
    output: Annotated[
        str | None, typer.Option(help="Run folder (default: runs/<task>-<model>-<method>-s<seed>).")
    ] = None,
    seed: Annotated[int | None, typer.Option(min=0, max=2**32 - 1, help="Seed (default 42).")] = None,
    train_set: TrainSet = None,
    data_dir: DataDir = None,
    resume: Annotated[
        bool, typer.Option(help="Continue a killed or interrupted run from its checkpoint.")
    ] = False,
    train_src: TrainSrc = None,
    train_tgt: TrainTgt = None,
    nltk: Nltk = None,
) -> None:
    """Fine-tune a model on a task with a PEFT method; writes the adapter and a run record.

    Training starts from the method's recipe (`slopeft methods` shows them); a --config file, the
    flags and --set override it, in that order.
    """
    from slopeft.config import load_run_config
    from slopeft.evaluation.workflows import translation_options
    from slopeft.methods.recipes import recipe_defaults
    from slopeft.records import RunRecord
    from slopeft.reporting.tables import run_table
    from slopeft.training.run import train_run

    run_config = load_run_config(
        config,
        set_,
        method_defaults=recipe_defaults,
        task=task,
        model=model,
        method=method,
        output=output,
        seed=seed,
        train_set=train_set,
        data_dir=str(data_dir) if data_dir else None,
    )
    options = translation_options(run_config.task, train_src, train_tgt, nltk=nltk)
    # --resume asks for a checkpoint: without one it is an error, not a silent start from step 0.
    record = train_run(run_config, resume=resume, task_options=options, require_checkpoint=resume)
    _console().print(run_table([RunRecord.from_dict(record)]))
    _console().print(f"Run record: {run_config.run_dir() / 'record.json'}")


AllowOtherBase = Annotated[
    bool,
    typer.Option(
        "--allow-other-base",
        help="Load the adapter on a base whose weights differ from those it was trained on (same shape).",
    ),
]


@app.command()
def evaluate(
    run: RunDir,
    split: Annotated[str, typer.Option(help="val (labelled).")] = "val",
    data_dir: DataDir = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per forward pass.")] = 32,
    allow_other_base: AllowOtherBase = False,
    nltk: Nltk = None,
) -> None:
    """Score a trained run on a labelled split."""
    from slopeft.evaluation.workflows import evaluate_workflow

    _print_result(evaluate_workflow(run, split, data_dir, batch_size, allow_other_base, nltk))


@app.command()
def predict(
    run: RunDir,
    split: Annotated[str, typer.Option(help="test (default) or val.")] = "test",
    data_dir: DataDir = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per forward pass.")] = 32,
    test_src: TestSrc = None,
    allow_other_base: AllowOtherBase = False,
    nltk: Nltk = None,
) -> None:
    """Write a trained run's predictions for a split in the leaderboard's format (run/predictions/<split>/)."""
    from slopeft.evaluation.workflows import predict_workflow

    _print_result(predict_workflow(run, split, data_dir, batch_size, test_src, allow_other_base, nltk))


@app.command()
def submit(
    runs: Annotated[
        list[Path], typer.Option("--runs", help="Run folders: the six SuperGLUE tasks, or one run.")
    ],
    out: Annotated[Path, typer.Option("--out", help="The submission zip to write.")],
    data_dir: DataDir = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per forward pass.")] = 32,
) -> None:
    """Assemble runs' test predictions into one leaderboard zip (predicting where not yet done) and check it."""
    from slopeft.evaluation.workflows import submit_workflow
    from slopeft.files import check_output

    check_output(out, "file", "--out")
    _print_result(submit_workflow(runs, out, data_dir, batch_size))


@app.command()
def quickstart(
    model: Annotated[str, typer.Option(help="Model alias, Hub id or folder (e.g. sloberta with internet).")] = (
        "e5-small-multilingual"
    ),
    task: Annotated[str, typer.Option(help="A small classification task.")] = "si-nli",
    train_examples: Annotated[int, typer.Option(min=0, help="Training rows used (0: the whole split).")] = 0,
    eval_examples: Annotated[int, typer.Option(min=0, help="Held-out validation rows scored (0: all).")] = 0,
    epochs: Annotated[float, typer.Option(help="Epochs over the training rows (fractions allowed).")] = 1.5,
    learning_rate: Annotated[
        float | None, typer.Option(help="Peak learning rate (default: each method's recipe).", show_default=False)
    ] = None,
    output: Annotated[Path, typer.Option(help="Where the run folders go.")] = Path("runs/quickstart"),
    data_dir: DataDir = None,
    sequential: Annotated[
        bool,
        typer.Option(help="Train the methods one after the other here (default: side by side, one process each)."),
    ] = False,
    precision: Annotated[
        str,
        typer.Option(help="fastest (bf16 on a GPU or on a CPU with native bf16, else fp32), fp32, bf16 or auto."),
    ] = "fastest",
) -> None:
    """The main job: LoRA and BitFit next to the majority baseline, with their costs, on one small task."""
    from slopeft.files import check_output
    from slopeft.quickstart import QuickstartConfig
    from slopeft.quickstart import quickstart as run_quickstart

    check_output(output, "folder", "--output")

    run_quickstart(QuickstartConfig(model=model, task=task, train_examples=train_examples,
                                    eval_examples=eval_examples, epochs=epochs, learning_rate=learning_rate, output=output,
                                    data_dir=str(data_dir) if data_dir else None, sequential=sequential,
                                    precision=precision),
                   _console())


@app.command()
def methods() -> None:
    """The registered methods with their recipes (default training settings) and options, and the training options."""
    import dataclasses as dc

    from slopeft.config import TrainingConfig, field_docs
    from slopeft.methods import METHODS
    from slopeft.methods.recipes import recipe_for
    from slopeft.reporting.tables import table

    rows = []
    for name, method in METHODS.items():
        options = (
            ", ".join(
                f"{f.name}={f.default!r}"
                for f in dc.fields(method.config_class)
                if f.default is not dc.MISSING
            )
            or "-"
        )
        recipe = recipe_for(name)
        settings = ", ".join(
            f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
            for key, value in {**recipe.training, **recipe.options}.items()
        )
        rows.append((name, ", ".join(method.families), settings, options))
    _console().print(
        table(
            "Methods",
            ("method", "model families", "recipe (slopeft/resources/recipes)", "options (--set METHOD.KEY=...)"),
            rows,
        )
    )
    docs = field_docs(TrainingConfig)
    training_rows = [(f.name, repr(f.default), docs.get(f.name, "")) for f in dc.fields(TrainingConfig)]
    _console().print(table("Training options (--set training.KEY=...)", ("option", "default", "meaning"),
                           training_rows))


def _print_result(result) -> None:
    from slopeft.reporting.tables import metrics_table

    if result.report is not None:
        _console().print(metrics_table(result.title, result.report.per_task, result.report.board))
        for metric, reason in result.report.notes.items():
            _console().print(f"[yellow]{metric} not reported:[/yellow] {reason}")
        for warning in result.report.warnings:
            _console().print(f"[yellow]Warning:[/yellow] {warning}", highlight=False)
    for line in result.messages:
        _console().print(line)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI and turns user errors into one paragraph and exit status 2."""
    try:
        # Without standalone mode click returns a command's exit code (typer.Exit(n)) instead of exiting.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except SlopeftError as err:
        Console(stderr=True).print(f"[bold red]Error:[/bold red] {err}", highlight=False)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    except OSError as err:
        from slopeft.files import is_disk_error, path_shape_error, write_error

        if (shape := path_shape_error(err)) is not None:  # an output option naming a file for a folder
            Console(stderr=True).print(f"[bold red]Error:[/bold red] {shape}", highlight=False)
            sys.exit(2)
        if not is_disk_error(err):
            raise
        # A write that is not one of the atomic result writers (a cache, a log): still one paragraph.
        Console(stderr=True).print(f"[bold red]Error:[/bold red] {write_error(err.filename or 'a file', err)}",
                                   highlight=False)
        sys.exit(2)
    except Exception as err:  # click's own usage errors (typer ≥ 0.24 vendors click as typer._click)
        if isinstance(err, _click_exceptions()):
            err.show()
            sys.exit(err.exit_code)
        raise


def _click_exceptions() -> tuple[type[Exception], ...]:
    import click

    found: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # typer before it vendored click raises click's own exceptions
        pass
    else:
        found.append(ClickException)
    return tuple(found)


if __name__ == "__main__":
    main()
