"""IncreLoRA's allocation schedule, as pure functions of the method's state: when modules gain rank,
which ones, and the learning-rate factor of each rank component.

* **When.** After ``init_warmup`` steps, every ``incre_interval`` steps, until the rank budget is
  spent; a schedule that would not finish within ``finish_by`` of the run's steps is shrunk
  proportionally (:func:`fit_schedule`).
* **Which.** Each module's sensitivity is smoothed as in AdaLoRA (:func:`smooth_importance`); the
  ``top_h`` modules with the highest score Ī·Ū gain ``rank_step`` each (:func:`choose_growth`).
* **How fast.** A component started at step s gets the learning rate
  peak · min(1, ramp(t − s) · g(t) / g(s)), g the trainer's schedule factor (:func:`component_factor`).
"""

from __future__ import annotations

import math
from typing import Any

from slopeft.methods.increlora.config import IncreLoraOptions


def fit_schedule(
    config: IncreLoraOptions, remaining_rank: int, rank_step: int, total_steps: int
) -> dict[str, Any]:
    """The allocation schedule for a run of ``total_steps`` with ``remaining_rank`` still to hand out."""
    warmup, interval = config.init_warmup, config.incre_interval
    rounds = math.ceil(max(remaining_rank, 0) / (config.top_h * rank_step))
    limit = config.finish_by * total_steps
    if config.finish_by > 0 and rounds and warmup + rounds * interval > limit:
        shrink = limit / (warmup + rounds * interval)
        warmup, interval = int(warmup * shrink), max(1, int(interval * shrink))
    restart = config.restart_warmup if config.restart_warmup is not None else max(warmup, 1)
    return {
        "init_warmup": warmup,
        "incre_interval": interval,
        "restart_warmup": restart,
        "total_steps": total_steps,
        "rounds": rounds,
    }


def is_allocation_step(schedule: dict[str, Any], step: int) -> bool:
    warmup, interval = schedule["init_warmup"], schedule["incre_interval"]
    return step > warmup and (step - warmup) % interval == 0


def smooth_importance(
    importance: float, uncertainty: float, score: float, beta1: float, beta2: float
) -> tuple[float, float]:
    """AdaLoRA's smoothing: Ī ← β₁Ī + (1−β₁)s, then Ū ← β₂Ū + (1−β₂)|s − Ī|."""
    importance = beta1 * importance + (1 - beta1) * score
    uncertainty = beta2 * uncertainty + (1 - beta2) * abs(score - importance)
    return importance, uncertainty


def choose_growth(
    scores: dict[str, float], ranks: dict[str, int], remaining: int, rank_step: int, max_rank: int, top_h: int
) -> dict[str, int]:
    """Module → rank to add: the ``top_h`` highest-scoring modules (ties by name) that can still grow."""
    grown: dict[str, int] = {}
    for name in sorted(scores, key=lambda n: (-scores[n], n)):
        if len(grown) >= top_h or remaining <= 0:
            break
        add = min(rank_step, remaining, max_rank - ranks[name])
        if add > 0:
            grown[name] = add
            remaining -= add
    return grown


def component_factor(start: int, g_start: float, step: int, g_now: float, restart: int) -> float:
    """Multiplier of the trainer's learning rate for a component that started training at ``start``
    (-1: not training; 0: from the start, following the trainer's schedule), with the trainer's
    schedule factor ``g_start`` then and ``g_now`` now, over a restarted warmup of ``restart`` steps."""
    if start < 0:
        return 0.0
    if start == 0 or restart <= 0:
        return 1.0
    if g_now <= 0:
        return 0.0
    ramp = min(1.0, (step - start + 1) / restart)
    wanted = min(1.0, ramp * g_now / max(g_start, 1e-12))
    return wanted / g_now
