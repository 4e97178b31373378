"""IncreLoRA (Zhang et al. 2023, "IncreLoRA: Incremental Parameter Allocation Method for
Parameter-Efficient Fine-tuning"): start every module at a small rank and add rank where it matters.

Own code, checked against the authors' ``loralib/increlora.py`` (FeiyuZhang98/IncreLoRA):

* **Update.** Each target Linear layer gets ΔW = Σᵢ Bᵢ·λᵢ·Aᵢ · α / r, with r the module's current rank
  (A rows and B columns start N(0, 0.02²), λ starts at 0, as in the authors' code).
* **Fixed shapes.** The trainer snapshots and restores parameters by name, so shapes never change: every
  module pre-allocates ``max_rank + rank_step`` components and switches them on in order. The current
  rank is itself stored as a (never optimised) parameter ``lora_rank``, so a snapshot of the best step,
  a resumed checkpoint and the saved adapter all carry the ranks that go with their weights.
* **Importance.** After every step each module's sensitivity s = Σ|ΔW ⊙ ∇ΔW| / √(d_out·d_in) (the
  authors' matrix-level |w·∇w|, aggregated per module) is smoothed as in AdaLoRA: Ī ← β₁Ī + (1−β₁)s,
  Ū ← β₂Ū + (1−β₂)|s − Ī|, score Ī·Ū. ∇ΔW comes from a hook on the materialised ΔW, which is used only
  while ranks are still being allocated (then the layer goes back to the cheap x·Aᵀ·Bᵀ path).
* **Schedule.** After ``init_warmup`` steps, every ``incre_interval`` steps the ``top_h`` modules with the
  highest scores gain ``rank_step`` each, until the total rank reaches ``target_rank`` × modules; then
  allocation stops. SloBench tasks are small: when that schedule would not finish within ``finish_by``
  of the run's steps, warmup and interval are shrunk proportionally (recorded in the method state).
* **Advance learning.** Each module keeps ``rank_step`` spare components whose A and B train with λ held
  at ``reserve_lambda`` (1e-5) before they are switched on; switched on, λ trains from 1e-5. Spare
  components only act in training mode: evaluation and the saved adapter use the active ones.
* **Restarted warmup.** Each group of newly trained parameters gets its own warmup and decay over the
  remaining steps (the authors' ``multi_lr``), and fresh optimiser state (the authors add each new
  group to the optimiser as a new parameter group). Mechanism: :meth:`IncreLora.build_optimizer`
  returns an AdamW whose update is multiplied per rank component by a factor the method sets in
  ``on_step_end``, and whose Adam moments and step counter are kept per component, starting when the
  component starts (:class:`ComponentScaledAdamW`); with the trainer's schedule factor g(t), a component started at step
  s gets the learning rate peak · min(1, ramp(t − s) · g(t) / g(s)), ramp rising linearly over
  ``restart_warmup`` steps — for the trainer's linear schedule exactly a fresh linear warmup then
  linear decay to zero at the end. Components present from step 0 follow the trainer's schedule.
* **Orthogonality.** ``extra_loss`` adds orth_reg · mean over modules of ‖AAᵀ − I‖²_F + ‖BᵀB − I‖²_F
  over the components in training (the paper's squared Frobenius form; the code uses the plain norm).

The saved adapter stores each module's final rank (``rank_pattern`` in adapter_config.json) and only
the active components, and loads back with those ranks.

The package, as peft's ``tuners/<method>/``: ``config`` (the options), ``layer`` (IncreLoraLinear),
``optimizer`` (ComponentScaledAdamW), ``allocator`` (the allocation schedule, as pure functions) and
``method`` (the registered IncreLora and its hooks).

Learning rate: the recipe (``slopeft/resources/recipes/increlora.yaml``) is 4e-3, the best of the sweep on
e5-small-multilingual and 1,600 SI-NLI rows (1e-3 0.402, 2e-3 0.432, 4e-3 0.443; 8e-3 collapsed to one class,
0.330; one seed, 440 validation rows), above the authors' ~1e-3.
"""

from slopeft.methods.increlora.config import IncreLoraOptions
from slopeft.methods.increlora.layer import IncreLoraLinear, increlora_layers
from slopeft.methods.increlora.method import IncreLora
from slopeft.methods.increlora.optimizer import ComponentScaledAdamW

__all__ = ["ComponentScaledAdamW", "IncreLora", "IncreLoraLinear", "IncreLoraOptions", "increlora_layers"]
