"""`slopeft quickstart`: the README's main job, end to end on one small task.

Prepares the default offline model, trains LoRA and BitFit with their recipes (the learning rates
the recipe sweep chose, ``slopeft methods``) for one and a half epochs on SI-NLI's training split
(what fits in ten minutes on 2 CPU cores), and prints them next to the majority baseline scored on
the same validation rows, with what each cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from slopeft.config import RunConfig, TrainingConfig, check_range, update_dataclass
from slopeft.evaluation.baselines import run_baseline
from slopeft.methods.recipes import recipe_for
from slopeft.records import RunRecord
from slopeft.reporting.tables import table
from slopeft.tasks import get_task
from slopeft.training.run import train_run


@dataclass
class QuickstartConfig:
    model: str = "e5-small-multilingual"
    task: str = "si-nli"
    methods: tuple[str, ...] = ("lora", "bitfit")
    train_examples: int = 0
    """Training rows (0: the whole training split, 3,952 rows for SI-NLI)."""
    eval_examples: int = 0
    """Validation rows scored (0: all, 440 for SI-NLI)."""
    epochs: float = 1.5
    learning_rate: float | None = None
    """None: each method's recipe (the sweep's choice)."""
    max_length: int = 256
    seed: int = 42
    output: Path = Path("runs/quickstart")
    data_dir: str | None = None
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The example limits slice lists here before any TrainingConfig sees them: -5 would take the last 5.
        check_range(self, "quickstart", "train_examples", low=0, hint="0 takes the whole split")
        check_range(self, "quickstart", "eval_examples", low=0, hint="0 scores every row")
        check_range(self, "quickstart", "epochs", low=0, low_open=True)
        if self.learning_rate is not None:
            check_range(self, "quickstart", "learning_rate", low=0, low_open=True,
                        hint="leave it out for each method's recipe rate")


def quickstart(config: QuickstartConfig, console: Console) -> list[tuple]:
    """Runs the quickstart and returns the rows of its results table."""
    from slopeft.models.sources import model_path, resolve_model

    console.rule("1/3 · model")
    console.print(f"Model folder: {model_path(resolve_model(config.model))}")
    task = get_task(config.task, config.data_dir)
    val = task.first(task.examples("val"), config.eval_examples)
    console.rule("2/3 · majority baseline")
    majority = run_baseline([task], "majority", "val")[task.name]
    baseline_metrics = task.metrics({e.idx: majority[e.idx] for e in val}, val)
    rows = [("majority", baseline_metrics[task.spec.main_metric], 0, "-", "-", "-", "-")]
    for number, method in enumerate(config.methods, start=1):
        console.rule(f"3/3 · {method} ({number}/{len(config.methods)})")
        recipe = recipe_for(method)
        settings = {**recipe.training, "epochs": config.epochs, "max_length": config.max_length,
                    "max_train_examples": config.train_examples, "max_eval_examples": config.eval_examples}
        if config.learning_rate is not None:
            settings["learning_rate"] = config.learning_rate
        run = RunConfig(task=config.task, model=config.model, method=method, seed=config.seed,
                        data_dir=config.data_dir, output=str(config.output / f"{config.task.replace('/', '-')}-{method}"),
                        method_options={**recipe.options, **config.method_options.get(method, {})},
                        training=update_dataclass(TrainingConfig(), settings, f"quickstart {method}"))
        record = RunRecord.from_dict(train_run(run, resume=(run.run_dir() / "checkpoint").exists(), console=console))
        cost = record.cost
        rows.append((method, record.metrics.main, cost["trainable"], f"{cost['trainable_share']:.3%}",
                     f"{cost['adapter_bytes'] / 2**20:.2f}", f"{cost['train_examples_per_s']:.1f}",
                     f"{cost['peak_rss_mb']:.0f}"))
    trained = config.train_examples or len(task.examples("train"))
    console.print(table(f"{config.task} · {config.model} · val accuracy on {len(val)} held-out rows "
                        f"(trained on {trained}, {config.epochs:g} epoch(s))",
                        ("method", task.spec.main_metric, "trainable params", "share of base", "adapter MB",
                         "train ex/s", "peak RSS MB"), rows))
    console.print(f"Run records: {config.output}/*/record.json")
    return rows
