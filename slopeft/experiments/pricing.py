"""Training tokens: the unit that prices a grid's runs on a task no run has trained yet.

``grid status`` prices a run still to train as the finished runs of its task, model and method
(else of its task and model). A task nothing has trained yet (the study's CB, COPA, WSC, BoolQ,
MultiRC while only SI-NLI and RTE are in) has no such runs; its runs are priced instead by the
model's CPU seconds per training token on the tasks it has trained, times the tokens the run will
train: examples × epochs × tokens per example as the head encodes them (both choices of a COPA
example, a BoolQ passage cut to ``max_length``). This carries a rate measured on short SI-NLI
pairs over to long BoolQ passages better than a price per example would.

A token of a long sequence costs more than one of a short one: per layer, a transformer's linear
maps cost about ``8·d² + 4·d·i`` multiply-adds per token (hidden size d, intermediate size i) and
attention ``4·d·L`` more at length L. Each example's L tokens are therefore weighted by
``1 + L / (2·d + i)`` (e5-small: d = 384, i = 1,536, so a 512-token MultiRC input counts 1.22× per
token, a 60-token SI-NLI pair 1.03×); a model whose config names neither size gets no weighting.

How well it carries over, measured on the study (4 December): priced from the 42 SI-NLI runs alone,
RTE's 14 first-seed runs (85 tokens per example against SI-NLI's 59) came out 10–25% below what
they cost (mean 19%; the same against each SI-NLI seed, so not the machines): a token of a longer
input costs more than its FLOPs say (the attention and softmax tensors grow as L² and run far
below the GEMM rate on a CPU). Since the rates pool every finished task, the error shrinks as
longer tasks finish; until then read a price for long inputs (BoolQ, MultiRC) as a lower bound.
``python benchmarks/pricing.py --from si-nli --to slo-superglue/rte --seed 1`` measures it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slopeft.errors import SlopeftError
from slopeft.experiments.grid import Grid, RunSpec

#: Training examples encoded to measure a task's tokens per example (evenly spaced over the split).
SAMPLE = 256


@dataclass
class TokenCounter:
    """Counts the tokens grid runs train on, reading each task and tokenizer once.

    ``tokens(run)`` is None where the run's data or model is not on this machine (a model is never
    downloaded or prepared to count tokens): such a run stays unpriced rather than failing or
    slowing ``grid status``.
    """

    grid: Grid
    _per_example: dict[tuple, tuple[int, float] | None] = field(default_factory=dict)
    _tokenizers: dict[str, Any] = field(default_factory=dict)

    def tokens(self, run: RunSpec) -> float | None:
        """The tokens ``run`` trains on over its whole schedule, or None."""
        config = run.config
        training = config.get("training") or {}
        # Not keyed by method: the first run's head stands for all (a prompt method's virtual tokens
        # shorten only inputs longer than max_length, a few percent of them).
        key = (run.task, config.get("train_set"), run.model, training.get("max_length"),
               training.get("max_train_examples"))
        if key not in self._per_example:
            self._per_example[key] = self._measure(run)
        measured = self._per_example[key]
        if measured is None:
            return None
        examples, per_example = measured
        steps = training.get("max_steps") or 0
        if steps:
            trained = steps * training.get("batch_size", 1) * training.get("grad_accumulation", 1)
        else:
            trained = examples * float(training.get("epochs", 1.0))
        return trained * per_example

    def _measure(self, run: RunSpec) -> tuple[int, float] | None:
        import transformers

        # Counting long inputs before the head cuts them makes the tokenizer warn; status prints a table.
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        try:
            return self._encode_sample(run)
        finally:
            transformers.logging.set_verbosity(verbosity)

    def _encode_sample(self, run: RunSpec) -> tuple[int, float] | None:
        from slopeft.config import run_config_from_dict
        from slopeft.experiments.worker import resolve_grid_model
        from slopeft.models.sources import cached_model_path, resolve_model
        from slopeft.training.build import prepare_parts

        try:
            model = resolve_grid_model(run.config["model"], self.grid.models_dir)
            local = cached_model_path(model)
            if local is None:
                return None  # not on this machine: counting its tokens must not download or convert it
            if resolve_model(model).kind == "hub":
                model = local  # the cached snapshot, so that nothing asks the Hub
            config = run_config_from_dict(
                {**run.config, "model": model, "output": str(self.grid.runs_dir / run.run_id),
                 "data_dir": self.grid.data_dir},
                f"the run {run.run_id}",
            )
            parts = prepare_parts(config, tokenizer=self._tokenizers.get(model))
            self._tokenizers[model] = parts.head.tokenizer
            train = parts.task.first(parts.task.examples("train"), config.training.max_train_examples)
            if not train:
                return None
            step = max(1, len(train) // SAMPLE)
            features = parts.head.encode(train[::step][:SAMPLE])
            width = attention_width(parts.base_config)
            lengths = [parts.head.feature_length(f) for f in features]
            per_example = sum(n * (1 + n / width) if width else n for n in lengths) / len(lengths)
        except (SlopeftError, OSError, ValueError, KeyError):
            return None  # data or model not on this machine: the run stays unpriced
        return len(train), per_example


def attention_width(config: dict[str, Any]) -> int | None:
    """``2·hidden + intermediate`` of a model config: the sequence length at which attention costs a
    token as much as the linear maps do (module docstring); None when the config names neither."""
    hidden = config.get("hidden_size") or config.get("d_model")
    intermediate = config.get("intermediate_size") or config.get("d_ff")
    if not isinstance(hidden, int) or not isinstance(intermediate, int):
        return None
    return 2 * hidden + intermediate


def token_rates(counter: TokenCounter, finished: list[tuple[RunSpec, float]]) -> dict[tuple, float]:
    """CPU seconds per training token of each model and method, and of each model (key ``(model,)``),
    from finished training runs and their CPU seconds."""
    sums: dict[tuple, list[float]] = {}
    for run, seconds in finished:
        tokens = counter.tokens(run)
        if not tokens:
            continue
        for key in ((run.model, run.method), (run.model,)):
            total = sums.setdefault(key, [0.0, 0.0])
            total[0] += seconds
            total[1] += tokens
    return {key: seconds / tokens for key, (seconds, tokens) in sums.items() if tokens}
