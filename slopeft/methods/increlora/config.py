"""IncreLoRA's options."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class IncreLoraOptions:
    init_r: int = 1
    """Rank every module starts with (the authors' scripts: 1)."""
    target_rank: int = 2
    """Average rank per module at the end: the budget is target_rank × modules (the authors use 2 to 8;
    2 on all six layer types costs about what LoRA r=8 on queries and values does)."""
    max_rank: int = 0
    """Most rank one module can reach (components are pre-allocated); 0: 4 × target_rank."""
    rank_step: int = 0
    """Rank a selected module gains per allocation; 0: the authors' table, max(1, target_rank // 2)."""
    top_h: int = 5
    """Modules that gain rank at each allocation (the authors' h)."""
    init_warmup: int = 100
    """Steps before the first allocation."""
    incre_interval: int = 100
    """Steps between allocations."""
    finish_by: float = 0.5
    """Share of the run's steps by which allocation must be done; a longer schedule is shrunk
    proportionally (0: never shrink; the authors' RTE run finishes at about 40%)."""
    beta1: float = 0.85
    """EMA coefficient of the sensitivity."""
    beta2: float = 0.85
    """EMA coefficient of the uncertainty."""
    alpha: float = 32.0
    """Scaling numerator: ΔW is multiplied by alpha / current rank (the authors' scripts: 32)."""
    dropout: float = 0.0
    """Dropout on the adapter's input."""
    orth_reg: float = 0.3
    """Coefficient of the orthogonality regulariser (the authors' scripts: 0.3; paper range 0.1-0.3)."""
    advance_learning: bool = True
    """Train spare components (A, B) with a tiny λ before they are switched on."""
    reserve_lambda: float = 1e-5
    """λ of spare components during advance learning, and λ of a component when it is switched on."""
    restart_warmup: int | None = None
    """Warmup steps of each newly added group's restarted schedule; None: the (shrunk) init_warmup;
    0: new components simply follow the trainer's schedule."""
    target_modules: list[str] | None = None
    """Module-name suffixes to adapt; default: every linear layer of attention and MLP (queries, keys,
    values, attention output, both MLP layers), as in the authors' scripts."""
