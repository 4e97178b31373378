"""The shared base model, and adapters loaded around it without copying its weights.

An adapter is loaded the way ``slopeft predict`` loads it (the run's config, the base model
fingerprint check, the method's own ``load``), with one difference: its model is built on the
meta device and every base tensor it does not train is *aliased* to the shared base model's
tensor (the same storage), so ten adapters cost one base model plus their own parameters.
Tensors the adapter writes (its head, BitFit's biases, all of full fine-tuning) are private
copies; a checksum of the shared weights before and after loading proves nothing else was written.

How an adapter is served (:data:`SERVING`):

* **mixed**: its rows join other adapters' rows in one forward pass of the shared model; each
  layer it changes holds a :class:`~slopeft.serving.layers.Patch` for its rows, and its own head
  reads its rows of the shared hidden states. When loading, a probe input is run through both the
  adapter's own model and the shared mixed path; if they disagree the adapter is served grouped.
* **grouped**: methods that change the input sequence or every weight (prompt tuning, P-tuning,
  prefix tuning, full fine-tuning) run their own model (on the aliased base weights) for their
  rows of the batch, one forward pass per adapter.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from slopeft.config import RunConfig
from slopeft.errors import ConfigError
from slopeft.methods import MethodContext
from slopeft.methods.base import ADAPTER_CONFIG, ADAPTER_WEIGHTS, model_width
from slopeft.records import RECORD, RunRecord, read_record
from slopeft.serving.layers import (
    AdaLoraPatch,
    BiasPatch,
    DeltaPatch,
    Ia3Patch,
    Patch,
    PeftLoraPatch,
    PlanState,
    ReplacePatch,
    RowPlan,
    mixed_layer,
    unwrap,
)
from slopeft.training.adapter import ADAPTER_DIR, ADAPTER_META, read_adapter_meta
from slopeft.training.build import RunParts, check_fingerprint, prepare_parts
from slopeft.training.run import folder_size

SERVING: dict[str, tuple[str, str]] = {
    "lora": ("mixed", "each row gets its own B·A update inside the shared forward pass"),
    "dora": ("mixed", "each row gets its own B·A update and magnitude rescaling (PEFT's DoRA code) in the shared pass"),
    "adalora": ("mixed", "each row gets its own P·Λ·Q update inside the shared forward pass"),
    "increlora": ("mixed", "each row gets its own Σ Bᵢ·λᵢ·Aᵢ update inside the shared forward pass"),
    "mola": ("mixed", "each row's tokens are routed to its own LoRA experts inside the shared forward pass"),
    "qa-lora": ("mixed", "the INT4 layers it adapts compute its rows; every other layer is shared"),
    "qlora": ("mixed", "the NF4 layers it adapts compute its rows; every other layer is shared (needs bitsandbytes)"),
    "ia3": ("mixed", "each row's keys, values and MLP activations are rescaled by its own vectors"),
    "bitfit": ("mixed", "each row gets its own bias differences added in the shared forward pass"),
    "bitfit-subset": ("mixed", "each row gets its own bias differences added in the shared forward pass"),
    "prompt-tuning": ("grouped", "its virtual tokens lengthen the input: its rows run as one group"),
    "p-tuning": ("grouped", "its virtual tokens lengthen the input: its rows run as one group"),
    "prefix-tuning": ("grouped", "its key/value prefixes change every attention layer: its rows run as one group"),
    "full": ("grouped", "every weight is its own: its rows run through its own copy of the model"),
}
"""Method → (how it is served, why)."""

LANES = {"EncoderPairHead": "encode", "EncoderChoiceHead": "encode", "CandidateScoringHead": "score",
         "GenerationHead": "generate"}
"""Head class → the kind of forward pass its rows share: encoder classification, candidate scoring, generation."""

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
PROBE_TOLERANCE = 1e-4


class AdapterLoadError(ConfigError):
    """An adapter folder that cannot be served (wrong base, pickle files, not a slopeft run)."""


class SharedBase:
    """The one base model every adapter runs on, with its tokenizer.

    Args:
        model: a model alias, Hub id or local folder (as ``slopeft train --model`` takes it).
        tokenizer: the model's tokenizer, if already loaded.
        device: where the model computes (``cpu``, ``cuda``); adapters are moved there when loaded.

    Attributes:
        name: ``model`` as given (adapters' base fingerprints are checked against it).
        family: ``encoder``, ``causal`` or ``seq2seq``.
        model: the shared model: the bare encoder (without pooler: each adapter's head pools), or the
            whole causal / seq2seq LM.
        parameters: every tensor of the shared model by name (tied names included).
        state: the row plan its :class:`~slopeft.serving.layers.MixedLayer` s read.
        tokenizer_lock: held around every tokenizer call (fast tokenizers are not safe to call from
            several threads while their truncation settings change).
    """

    def __init__(self, model: str, tokenizer: Any = None, device: str | torch.device = "cpu") -> None:
        import transformers

        from slopeft.models.catalogue import family_of
        from slopeft.models.heads.pooling import pooling_of, use_mean_pooling
        from slopeft.models.sources import load_tokenizer, model_path, resolve_model

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        source = resolve_model(model)
        self.name = model
        self.path = model_path(source)
        self.config = json.loads((Path(self.path) / "config.json").read_text())
        self.family = source.family or family_of(self.config)
        self.tokenizer = tokenizer or load_tokenizer(source)
        self.tokenizer_lock = threading.RLock()
        auto = {"encoder": "AutoModel", "causal": "AutoModelForCausalLM", "seq2seq": "AutoModelForSeq2SeqLM"}
        self.model = getattr(transformers, auto[self.family]).from_pretrained(self.path)
        self.model.eval()
        self.model.requires_grad_(False)
        self.model.to(device)  # in place: the Parameter objects adapters alias stay the same
        # Captured before the pooler is dropped: adapters alias the base's pooler when they do not train one.
        self.parameters: dict[str, nn.Parameter] = dict(self.model.named_parameters(remove_duplicate=False))
        if self.family == "encoder" and getattr(self.model, "pooler", None) is not None:
            self.model.pooler = None  # each adapter's head pools (its pooler may be trained)
        if self.family == "encoder" and pooling_of(self.path) == "mean":

            class _Holder:  # use_mean_pooling finds the backbone under base_model_prefix
                base_model_prefix = "backbone"
                backbone = self.model

            use_mean_pooling(_Holder())
        self.dtype = next(iter(self.parameters.values())).dtype
        self.state = PlanState()
        self.base_parameters = sum(p.numel() for p in self.model.parameters())

    @property
    def device(self) -> torch.device:
        return next(iter(self.parameters.values())).device

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return self.tokenizer.eos_token_id if pad is None else pad

    def checksum(self) -> dict[str, float]:
        """A cheap fingerprint of the shared weights (a strided sample of each tensor)."""
        with torch.no_grad():
            return {
                name: float(p.detach().reshape(-1)[:: max(1, p.numel() // 4096)].double().sum())
                for name, p in self.parameters.items()
            }


@dataclass
class ServedAdapter:
    """One loaded adapter.

    Attributes:
        name: what requests call it.
        slot: its number in the shared layers' patch tables.
        parts: task, head and method (as ``slopeft predict`` builds them).
        model: its own model (base tensors aliased to the shared model's).
        hf_model: the transformers model inside ``model`` (PEFT's wrapper removed).
        mode: ``mixed`` or ``grouped``; ``note`` says why.
        lane: ``encode``, ``score`` or ``generate``: which rows can share a forward pass.
        patches: shared-model layer name → what this adapter does to it (mixed only).
    """

    name: str
    slot: int
    run_dir: Path
    record: RunRecord
    meta: dict[str, Any]
    parts: RunParts
    model: nn.Module
    hf_model: nn.Module
    mode: str
    note: str
    lane: str
    patches: dict[str, Patch] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)
    pending: int = 0  # examples queued or in flight
    unloading: bool = False

    @property
    def head(self):
        return self.parts.head

    @property
    def task(self):
        return self.parts.task

    @property
    def method(self) -> str:
        return self.parts.method.name

    @property
    def labels(self) -> list[str] | None:
        if self.lane == "generate":
            return None
        if type(self.head).__name__ == "EncoderChoiceHead":
            return [str(i) for i in range(len(self.task.spec.labels))]
        if self.lane == "score":
            return [str(label) for label in self.head.format.candidate_labels()]
        return [str(label) for label in self.task.spec.labels]

    def info(self, base_name: str) -> dict[str, Any]:
        cost = self.record.cost
        return {
            "name": self.name,
            "method": self.method,
            "task": self.task.name,
            "base": base_name,
            "run": str(self.run_dir),
            "trainable_parameters": cost.get("trainable"),
            "trainable_parameters_without_head": cost.get("trainable_without_head"),
            "adapter_bytes": folder_size(self.run_dir / ADAPTER_DIR),
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.loaded_at)),
            "serving": self.mode,
            "serving_note": self.note,
            "endpoint": "/v1/completions" if self.lane == "generate" else "/v1/predict",
            "labels": self.labels,
            "pending": self.pending,
        }


def locate_run(path: Path | str) -> tuple[Path, Path]:
    """(run folder, adapter folder) of a run folder or of its ``adapter/`` folder."""
    path = Path(path).expanduser()
    if (path / RECORD).is_file() and (path / ADAPTER_DIR / ADAPTER_META).is_file():
        return path, path / ADAPTER_DIR
    if (path / ADAPTER_META).is_file() and (path.parent / RECORD).is_file():
        return path.parent, path
    if not path.exists():
        raise AdapterLoadError(f"{path} does not exist.")
    raise AdapterLoadError(
        f"{path} is not a slopeft run: a run folder holds {RECORD} and {ADAPTER_DIR}/{ADAPTER_META} "
        "(written by `slopeft train`). Pass the run folder or its adapter/ folder."
    )


def check_safetensors_only(adapter_dir: Path) -> None:
    """Refuses adapter folders that hold pickle files or lack the safetensors weights."""
    pickled = sorted(p.name for p in adapter_dir.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickled:
        raise AdapterLoadError(
            f"Refusing {adapter_dir}: it holds pickle files ({', '.join(pickled[:3])}), and loading a pickle "
            "can run arbitrary code. slopeft serves safetensors adapters only; remove them or re-save the adapter."
        )
    if not (adapter_dir / ADAPTER_WEIGHTS).is_file():
        raise AdapterLoadError(f"{adapter_dir} has no {ADAPTER_WEIGHTS}: slopeft serves safetensors adapters only.")


def _run_config(record: RunRecord, base: SharedBase) -> RunConfig:
    # The server reads no data: the default training and validation sets avoid folders only the trainer had.
    return dataclasses.replace(
        record.run_config(), model=base.name, data_dir=None, train_set=None, val_set=None, output=None
    )


def load_adapter(base: SharedBase, name: str, path: Path | str, slot: int) -> ServedAdapter:
    """Loads the run at ``path`` around ``base``, checked as ``slopeft predict`` checks it.

    The returned adapter is not yet usable in mixed batches: :func:`install` (run where no forward
    pass is in flight) adds its patches to the shared layers and checks them.

    Raises:
        AdapterLoadError / ConfigError: not a slopeft run, another base model, pickle files, a method
            this machine cannot run (QLoRA without bitsandbytes).
    """
    run_dir, adapter_dir = locate_run(path)
    check_safetensors_only(adapter_dir)
    record = read_record(run_dir)
    meta = read_adapter_meta(adapter_dir, record.versions.get("slopeft"))
    parts = prepare_parts(_run_config(record, base), tokenizer=base.tokenizer)
    check_fingerprint(meta["base"], parts, adapter_dir)
    if parts.family != base.family:
        raise AdapterLoadError(f"{run_dir} is a {parts.family} adapter; the base {base.name} is {base.family}.")
    head_modules = list(meta.get("head_modules") or (record.model or {}).get("head_modules") or [])
    _check_peft_config(adapter_dir)
    before = base.checksum()
    with torch.no_grad():
        model, context = _own_model(base, parts, adapter_dir, head_modules)
        model = parts.method.load(model, adapter_dir, context)
    model.to(base.device).eval()  # its own tensors (head, adapter weights); the aliased ones are there already
    changed = [n for n, v in base.checksum().items() if v != before[n]]
    if changed:  # never expected: aliasing keeps every tensor the adapter writes private
        raise RuntimeError(f"Loading {run_dir} changed shared base weights ({changed[:3]}); the server stops.")
    hf_model = model.get_base_model() if hasattr(model, "get_base_model") else model
    mode, note = SERVING.get(parts.method.name, ("grouped", "slopeft knows no mixed path for this method"))
    lane = LANES[type(parts.head).__name__]
    return ServedAdapter(name, slot, run_dir, record, meta, parts, model, hf_model, mode, note, lane)


def _check_peft_config(adapter_dir: Path) -> None:
    config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text()) if (adapter_dir / ADAPTER_CONFIG).is_file() else {}
    if config.get("bias", "none") != "none":
        raise AdapterLoadError(
            f"{adapter_dir} trains base biases through PEFT (bias={config['bias']!r}); slopeft's server serves "
            "adapters that leave the base weights alone (slopeft's LoRA family uses bias='none'; BitFit trains biases)."
        )


def _own_model(
    base: SharedBase, parts: RunParts, adapter_dir: Path, head_modules: list[str]
) -> tuple[nn.Module, MethodContext]:
    """The run's model class built empty, its base tensors aliased to the shared ones (see module docs)."""
    import transformers
    from accelerate import init_empty_weights

    auto = getattr(transformers, parts.head.auto_class)
    config = transformers.AutoConfig.from_pretrained(parts.model_path, **parts.head.model_kwargs())
    with init_empty_weights(include_buffers=False):
        model = auto.from_config(config, dtype=base.dtype)
    model.config._name_or_path = parts.model_path  # as from_pretrained sets it (prompt init reads it)
    if base.family != "encoder":
        try:
            model.generation_config = transformers.GenerationConfig.from_pretrained(parts.model_path)
        except OSError:
            pass  # no generation_config.json: the one derived from config.json, as from_pretrained does
    prefix = model.base_model_prefix + "." if base.family == "encoder" else ""
    with safe_open(str(adapter_dir / ADAPTER_WEIGHTS), "pt") as weights:
        written = set(weights.keys())  # own-format adapters copy these tensors into the model by name

    def in_head(name: str) -> bool:
        return any(name == h or name.startswith(h + ".") for h in head_modules)

    for module_name, module in model.named_modules():
        for key, parameter in list(module._parameters.items()):
            if parameter is None:
                continue
            full = f"{module_name}.{key}" if module_name else key
            shared_name = full[len(prefix):] if full.startswith(prefix) else None
            shared = base.parameters.get(shared_name) if shared_name is not None else None
            fits = shared is not None and shared.shape == parameter.shape and shared.dtype == parameter.dtype
            if fits and not in_head(full) and full not in written:
                module._parameters[key] = shared
            elif fits and not in_head(full):
                module._parameters[key] = nn.Parameter(shared.detach().clone(), requires_grad=False)
            elif in_head(full):
                # A head module the checkpoint lacks (classifier, a pooler): the adapter holds its trained values.
                module._parameters[key] = nn.Parameter(
                    torch.zeros(parameter.shape, dtype=parameter.dtype), requires_grad=False
                )
            else:
                raise AdapterLoadError(
                    f"{parts.model_name}'s {type(model).__name__} has {full}, which the shared base model lacks."
                )
    parts.head.after_load(model, parts.model_path)
    model.eval()
    context = MethodContext(parts.family, parts.architecture, head_modules, parts.head.peft_task_type, model_width(model))
    parts.method.check_runnable(context)
    return model, context


# -- the mixed path: patches --------------------------------------------------------------------
class NotMixable(Exception):
    """The adapter changes the shared part of the model in a way no patch expresses."""


def shared_roots(adapter: ServedAdapter, base: SharedBase) -> tuple[nn.Module, set[str]]:
    """The adapter's counterpart of the shared model, and the top-level children the mixed path leaves to the head."""
    if base.family == "encoder":
        hf = adapter.hf_model
        return getattr(hf, hf.base_model_prefix), {"pooler"}
    return adapter.hf_model, set()


def extract_patches(adapter: ServedAdapter, base: SharedBase) -> dict[str, Patch]:
    """What the adapter does to each layer of the shared model.

    Raises:
        NotMixable: naming the first module that differs in a way no patch covers.
    """
    own_root, skip = shared_roots(adapter, base)
    patches: dict[str, Patch] = {}

    def walk(own: nn.Module, shared: nn.Module, name: str) -> None:
        shared = unwrap(shared)
        patch = _patch_for(own, shared, name)
        if patch is not None:
            patches[name] = patch
            return
        if type(own) is not type(shared):
            raise NotMixable(f"{name or 'the model'} is a {type(own).__name__} where the base has {type(shared).__name__}")
        for key, parameter in own._parameters.items():
            theirs = shared._parameters.get(key)
            if parameter is theirs:
                continue
            if (
                key == "bias"
                and isinstance(own, nn.Linear | nn.LayerNorm)
                and theirs is not None
                and own.weight is shared.weight
            ):
                patches[name] = BiasPatch((parameter - theirs).detach())
                continue
            raise NotMixable(f"{name}.{key} differs from the base")
        for child_name, child in own._modules.items():
            if not name and child_name in skip:
                continue
            theirs = shared._modules.get(child_name)
            if child is None and theirs is None:
                continue
            if child is None or theirs is None:
                raise NotMixable(f"{name}.{child_name} exists in only one of the adapter and the base")
            walk(child, theirs, f"{name}.{child_name}" if name else child_name)

    walk(own_root, base.model, "")
    return patches


def _patch_for(own: nn.Module, shared: nn.Module, name: str) -> Patch | None:
    from peft.tuners.adalora.layer import SVDLinear
    from peft.tuners.ia3.layer import Linear as Ia3Linear
    from peft.tuners.lora.layer import Linear as LoraLinear
    from peft.tuners.lora.layer import LoraLayer
    from peft.tuners.tuners_utils import BaseTunerLayer

    from slopeft.methods.increlora import IncreLoraLinear
    from slopeft.methods.mola import MolaLinear
    from slopeft.methods.quant import QuantLinear

    def same_base(layer: nn.Module) -> bool:
        return (
            isinstance(layer, nn.Linear)
            and isinstance(shared, nn.Linear)
            and layer.weight is shared.weight
            and layer.bias is shared.bias
        )

    if isinstance(own, BaseTunerLayer):
        if own.merged or own.disable_adapters or list(own.active_adapters) != ["default"]:
            raise NotMixable(f"{name}: a merged, disabled or multi-adapter PEFT layer")
        layer = own.get_base_layer()
        if isinstance(own, SVDLinear) and same_base(layer):
            return AdaLoraPatch(own)
        if type(own) is LoraLinear and same_base(layer):
            return PeftLoraPatch(own)
        if isinstance(own, Ia3Linear) and same_base(layer):
            return Ia3Patch(own.ia3_l["default"].detach(), own.is_feedforward)
        if isinstance(own, LoraLayer) and isinstance(shared, nn.Linear):
            return ReplacePatch(own)  # e.g. LoRA on a 4-bit base layer (QLoRA)
        raise NotMixable(f"{name}: PEFT layer {type(own).__name__}")
    if isinstance(own, IncreLoraLinear | MolaLinear) and same_base(own.base_layer):
        return DeltaPatch(own)
    if isinstance(own, QuantLinear) and isinstance(shared, nn.Linear):
        return ReplacePatch(own)
    return None


def install(adapter: ServedAdapter, base: SharedBase) -> None:
    """Adds a mixed adapter's patches to the shared layers and checks them on a probe input.

    Must run where no forward pass is in flight (the engine thread). An adapter whose mixed path
    cannot be built, or disagrees with its own model, is switched to ``grouped`` with the reason.
    """
    if adapter.mode != "mixed":
        return
    try:
        patches = extract_patches(adapter, base)
    except NotMixable as why:
        adapter.mode, adapter.note = "grouped", f"served grouped: {why}"
        return
    for layer_name, patch in patches.items():
        mixed_layer(base.model, layer_name, base.state).patches[adapter.slot] = patch
    adapter.patches = patches
    try:
        difference = probe_difference(adapter, base)
    except RuntimeError as err:
        uninstall(adapter, base)
        adapter.mode, adapter.note = "grouped", f"served grouped: the mixed path failed on a probe input ({err})"
        return
    if difference > PROBE_TOLERANCE:
        uninstall(adapter, base)
        adapter.mode = "grouped"
        adapter.note = (
            f"served grouped: on a probe input the mixed path differed from the adapter's own model by "
            f"{difference:.2e}"
        )


def uninstall(adapter: ServedAdapter, base: SharedBase) -> None:
    """Removes the adapter's patches from the shared layers (engine thread)."""
    for layer_name in adapter.patches:
        layer = base.model.get_submodule(layer_name)
        layer.patches.pop(adapter.slot, None)
    adapter.patches = {}


@torch.inference_mode()
def probe_difference(adapter: ServedAdapter, base: SharedBase) -> float:
    """Largest difference between the adapter's own model and the shared mixed path on random tokens.

    Encoders compare the last hidden states (the head reads them); generative models the logits.
    """
    generator = torch.Generator().manual_seed(0)
    vocab = int(base.config.get("vocab_size") or len(base.tokenizer))
    ids = torch.randint(min(5, vocab - 1), vocab, (2, 16), generator=generator).to(base.device)
    mask = torch.ones_like(ids)
    inputs: dict[str, torch.Tensor] = {"input_ids": ids, "attention_mask": mask}
    if base.family == "seq2seq":
        inputs["decoder_input_ids"] = ids[:, :4]
    own_root, _ = shared_roots(adapter, base)
    own = own_root(**inputs)
    with base.state.use(RowPlan.single(adapter.slot, ids.shape[0])):
        shared = base.model(**inputs)
    key = "last_hidden_state" if base.family == "encoder" else "logits"
    own_t, shared_t = getattr(own, key).float(), getattr(shared, key).float()
    scale = max(1.0, float(own_t.abs().max()))
    return float((own_t - shared_t).abs().max()) / scale
