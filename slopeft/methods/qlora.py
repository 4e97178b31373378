"""QLoRA (Dettmers et al. 2023): LoRA on a frozen 4-bit NormalFloat (NF4) base, through bitsandbytes.

bitsandbytes is optional (not a dependency of slopeft). When it is missing, or cannot quantise to NF4 on
the training device, the method stops with a ConfigError that names ``qa-lora`` (slopeft's pure-PyTorch
INT4 route, which also runs on a CPU). bitsandbytes 0.46+ ships a CPU backend that does NF4, so with it
installed QLoRA runs on a CPU too (slowly: no fused 4-bit kernels without the ``kernels`` package).

The base is quantised after loading: every ``nn.Linear`` except the task head, the output embedding (a
tied LM head) and the modules the model keeps in float32 (T5's ``wo``) becomes a
``bitsandbytes.nn.Linear4bit`` (NF4, double quantisation, as in the paper); PEFT's LoRA then wraps the
target layers with its 4-bit LoRA layer. The default targets are all linear layers of the attention
and MLP blocks — the paper's finding is that LoRA on every layer is needed to match 16-bit fine-tuning.
The saved adapter is an ordinary PEFT LoRA adapter; loading quantises the base the same way first.
Merging gives a float model (dequantise, add B·A); re-quantising that to 4 bits, as PEFT's merge on
4-bit layers does, would change the outputs by the rounding error — the step QA-LoRA avoids.

Learning rate: the recipe (``slopeft/resources/recipes/qlora.yaml``) is 5e-4, the best of the sweep on
e5-small-multilingual and 1,600 SI-NLI rows (2.5e-4 0.459, 5e-4 0.489, 1e-3 0.459; 2e-3 and 4e-3 collapsed to one
class; one seed, 440 validation rows); the QLoRA paper trains LLaMA at 1e-4 to 2e-4.
"""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slopeft.config import check_choice, check_modules, check_range
from slopeft.errors import ConfigError
from slopeft.methods.base import METHODS, MethodContext
from slopeft.methods.lora import PeftMethod
from slopeft.methods.quant import ALL_LINEAR_ROLES, in_modules, model_bytes
from slopeft.methods.targets import role_regex


@dataclass
class QLoraOptions:
    r: int = 8
    """Rank of the LoRA update."""
    alpha: float = 16.0
    """Scaling numerator: the update is multiplied by alpha / r (the paper: 16)."""
    dropout: float = 0.1
    """Dropout on the adapter's input (the paper: 0.1 up to 13B)."""
    target_modules: list[str] | None = None
    """Module-name suffixes to adapt; default: every linear layer of the attention and MLP blocks."""
    quant_type: str = "nf4"
    """4-bit data type of the base: nf4 (the paper) or fp4."""
    double_quant: bool = True
    """Quantise the quantisation constants too (the paper's double quantisation)."""
    compute_dtype: str = "auto"
    """dtype of the 4-bit matmuls: auto (bfloat16 on a GPU that supports it, else float32), bfloat16,
    float16 or float32."""

    def __post_init__(self) -> None:
        check_range(self, "qlora", "r", low=1)
        check_range(self, "qlora", "alpha", low=0, low_open=True)
        check_range(self, "qlora", "dropout", low=0, high=1, high_open=True)
        check_modules(self, "qlora", "target_modules")
        check_choice(self, "qlora", "quant_type", ("nf4", "fp4"))
        check_choice(self, "qlora", "compute_dtype", ("auto", "bfloat16", "float16", "float32"))


def training_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


PROBE_MARKER = "slopeft NF4 probe: "
"""Starts the line of the probe's answer (bitsandbytes may print notes of its own)."""


def bitsandbytes_problem(device: str) -> str | None:
    """Why bitsandbytes cannot run QLoRA on ``device`` (None: it can), from an NF4 round trip of a small
    tensor in a fresh interpreter.

    Not in this process: a grid's runner makes this check while expanding the grid and then forks its
    runs, and bitsandbytes' CPU kernels start OpenMP's thread pool, which a forked child inherits
    broken: its first multi-threaded operation waits forever (seen: ``grid run --workers 1`` hung in
    the first layer norm of every run). The probe costs the import of torch and bitsandbytes once per
    process.
    """
    if importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not installed"
    return _probe_in_own_interpreter(device)


@functools.cache
def _probe_in_own_interpreter(device: str) -> str | None:
    # The answer is the last line, after a marker: bitsandbytes may print notes of its own on import.
    probe = f"from slopeft.methods.qlora import nf4_round_trip; print('{PROBE_MARKER}' + (nf4_round_trip({device!r}) or ''))"
    command = [sys.executable, "-c", probe]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return f"bitsandbytes' NF4 round trip on {device} did not finish in 300 s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"bitsandbytes' NF4 round trip on {device} failed ({last})"
    answers = [line[len(PROBE_MARKER) :] for line in done.stdout.splitlines() if line.startswith(PROBE_MARKER)]
    if not answers:
        return f"bitsandbytes' NF4 round trip on {device} gave no answer"
    return answers[-1].strip() or None



def nf4_round_trip(device: str) -> str | None:
    """Quantises a small tensor to NF4 and back on ``device``: why that fails, or None (run by
    :func:`bitsandbytes_problem` in its own interpreter)."""
    try:
        import bitsandbytes
        from bitsandbytes.functional import dequantize_4bit, quantize_4bit

        # NF4 levels are at most 0.31 apart in [-1, 1]: the round trip is within 0.16 of the input.
        sample = torch.linspace(-1, 1, 256, device=device).view(4, 64)
        packed, state = quantize_4bit(sample, quant_type="nf4", blocksize=64)
        back = dequantize_4bit(packed, state)
        if not torch.isfinite(back).all() or (back - sample).abs().max() > 0.2:
            return f"bitsandbytes {bitsandbytes.__version__} returned wrong NF4 values on {device}"
    except Exception as err:  # noqa: BLE001 - any failure means "not usable here"
        return f"bitsandbytes cannot quantise to NF4 on {device} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return None


def _dtype(name: str) -> torch.dtype:
    if name == "auto":
        cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    dtypes = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    if name not in dtypes:
        raise ConfigError(f"qlora.compute_dtype must be auto, bfloat16, float16 or float32, not {name!r}.")
    return dtypes[name]


@METHODS.register("qlora")
class QLora(PeftMethod):
    name = "qlora"
    config_class = QLoraOptions

    def environment_problem(self) -> str | None:
        device = training_device()
        problem = bitsandbytes_problem(device)
        if problem:
            return (
                f"qlora needs bitsandbytes with 4-bit NF4 support on this machine's {device.upper()}: {problem}. "
                "Install it with `pip install bitsandbytes` (0.46 or later also has a CPU backend that does NF4), "
                "or use `--method qa-lora`, slopeft's pure-PyTorch 4-bit route that runs on a CPU "
                "(group-wise INT4 base + LoRA, merged back into INT4)."
            )
        return None

    def quantize(self, model: nn.Module, context: MethodContext) -> nn.Module:
        """Replaces the base's Linear layers (not the head, the output embedding, or fp32-kept modules) by NF4 ones."""
        import bitsandbytes as bnb

        c = self.config
        compute = _dtype(c.compute_dtype)
        device = training_device()
        output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        keep = set(getattr(model, "_keep_in_fp32_modules", None) or []) | set(
            getattr(model, "_keep_in_fp32_modules_strict", None) or []
        )
        for name, module in list(model.named_modules()):
            if (
                not isinstance(module, nn.Linear)
                or module is output
                or in_modules(name, context.head_modules)
            ):
                continue
            if keep & set(name.split(".")):
                continue
            layer = bnb.nn.Linear4bit(
                module.in_features,
                module.out_features,
                bias=module.bias is not None,
                compute_dtype=compute,
                compress_statistics=c.double_quant,
                quant_type=c.quant_type,
                device="meta",
            )
            layer.weight = bnb.nn.Params4bit(
                module.weight.data,
                requires_grad=False,
                compress_statistics=c.double_quant,
                quant_type=c.quant_type,
            )
            if module.bias is not None:
                layer.bias = nn.Parameter(module.bias.data, requires_grad=False)
            # bitsandbytes' CPU inference kernel (AVX512-BF16) repacks the weight and computes in bf16: outputs
            # then differ by ~1e-2 from training's float path. Keep one numeric path for training and evaluation.
            if hasattr(layer, "support_avx512bf16_for_cpu"):
                layer.support_avx512bf16_for_cpu = False
            model.set_submodule(name, layer.to(device))  # .to() quantises
        model.is_loaded_in_4bit = True  # PEFT then wraps the Linear4bit layers with its 4-bit LoRA layer
        return model

    def peft_config(self, context: MethodContext):
        from peft import LoraConfig

        c = self.config
        return LoraConfig(
            r=c.r,
            lora_alpha=c.alpha,
            lora_dropout=c.dropout,
            target_modules=c.target_modules or role_regex(context.architecture, *ALL_LINEAR_ROLES),
            **self.common(context),
        )

    def apply(self, model: nn.Module, context: MethodContext) -> nn.Module:
        return super().apply(self.quantize(model, context), context)

    def load(self, base: nn.Module, adapter_dir: Path, context: MethodContext) -> nn.Module:
        return super().load(self.quantize(base, context), adapter_dir, context)

    def merge(self, model: nn.Module) -> nn.Module:
        """Dequantises the NF4 base and adds B·A: a float model whose outputs equal the adapter's.

        PEFT's merge on 4-bit layers re-quantises the sum to NF4, which changes the outputs by the
        rounding error (about 1e-3 on the tiny test models) — the step QA-LoRA's design avoids. Quantise
        the merged float model again if a 4-bit file is wanted.
        """
        import bitsandbytes as bnb
        from peft.tuners.tuners_utils import BaseTunerLayer

        def dense(layer: nn.Module, delta: torch.Tensor | None = None) -> nn.Linear:
            data, state = layer.weight.data, layer.weight.quant_state
            if getattr(state, "packing_format_for_cpu", False):  # repacked for bnb's CPU inference kernel
                data, state = bnb.functional._convert_weight_packed_for_cpu_inverse(data, state)
            weight = bnb.functional.dequantize_4bit(data, state).float()
            if delta is not None:
                weight = weight + delta.float()
            linear = nn.Linear(
                layer.in_features, layer.out_features, bias=layer.bias is not None, device=weight.device
            )
            linear.weight = nn.Parameter(weight, requires_grad=False)
            if layer.bias is not None:
                linear.bias = nn.Parameter(layer.bias.detach().float(), requires_grad=False)
            return linear

        with torch.no_grad():
            for name, module in list(model.named_modules()):
                if not isinstance(module, BaseTunerLayer):
                    continue
                if isinstance(module.get_base_layer(), bnb.nn.Linear4bit):
                    delta = sum(module.get_delta_weight(a) for a in module.active_adapters)
                    model.set_submodule(name, dense(module.get_base_layer(), delta))
                else:  # a target kept in float (T5's wo): an ordinary LoRA merge
                    module.merge()
                    model.set_submodule(name, module.get_base_layer())
            if hasattr(model, "unload"):
                model = model.unload()  # PEFT: unwrap the trained head copies, drop the PEFT wrapper
            for name, module in list(model.named_modules()):
                if isinstance(module, bnb.nn.Linear4bit):
                    model.set_submodule(name, dense(module))
        model.is_loaded_in_4bit = False
        return model

    def cost_report(self, model: nn.Module) -> dict[str, Any]:
        """Bytes of the model with its 4-bit base (codes + quantisation constants) and the adapter."""
        import bitsandbytes as bnb

        constants = 0
        for module in model.modules():
            if (
                isinstance(module, bnb.nn.Linear4bit)
                and getattr(module.weight, "quant_state", None) is not None
            ):
                state = module.weight.quant_state
                for tensor in (state.absmax, getattr(state, "code", None)):
                    if isinstance(tensor, torch.Tensor):
                        constants += tensor.numel() * tensor.element_size()
                nested = getattr(state, "state2", None)
                if nested is not None:
                    constants += sum(
                        t.numel() * t.element_size()
                        for t in (nested.absmax, nested.code)
                        if isinstance(t, torch.Tensor)
                    )
        adapter = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if "lora_" in n)
        return {"base_plus_adapter_bytes": model_bytes(model) + constants, "adapter_bytes": adapter}
