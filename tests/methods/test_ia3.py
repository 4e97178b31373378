"""(IA)³ rescales exactly keys, values and the MLP's inner activation on every architecture."""

from __future__ import annotations

import re

import pytest

from slopeft.errors import ConfigError
from slopeft.methods.ia3 import IA3
from slopeft.training.build import load_base

RTE = "slo-superglue/rte"

# Per tiny architecture (2 layers; t5: 2 encoder + 2 decoder blocks, the decoder with cross-attention):
# module-name regexes of the output-scaled layers (keys, values) and the input-scaled MLP output
# layer, and how many of each.
EXPECTED = {
    "bert": (r"attention\.self\.(key|value)$", r"layer\.\d+\.output\.dense$", 4, 2),
    "xlm-roberta": (r"attention\.self\.(key|value)$", r"layer\.\d+\.output\.dense$", 4, 2),
    "gemma": (r"self_attn\.(k_proj|v_proj)$", r"mlp\.down_proj$", 4, 2),
    "t5": (r"(SelfAttention|EncDecAttention)\.(k|v)$", r"DenseReluDense\.wo$", 12, 4),
}


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_targets_keys_values_and_the_mlp_output_layer(run_parts, arch):
    from peft.tuners.ia3 import IA3Layer

    parts = run_parts(arch, RTE, "ia3")
    base, context = load_base(parts)
    model = parts.method.apply(base, context)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, IA3Layer)}
    outputs, inputs, n_outputs, n_inputs = EXPECTED[arch]
    feedforward = {n for n, m in layers.items() if m.is_feedforward}
    scaled_outputs = set(layers) - feedforward
    assert all(re.search(outputs, n) for n in scaled_outputs), sorted(scaled_outputs)
    assert all(re.search(inputs, n) for n in feedforward), sorted(feedforward)
    assert (len(scaled_outputs), len(feedforward)) == (n_outputs, n_inputs)
    assert not any("attention.output" in n for n in layers)  # BERT's other output.dense is not the MLP


def test_explicit_targets_need_feedforward_modules_as_a_subset():
    with pytest.raises(ConfigError, match="go together"):
        IA3({"target_modules": ["k", "v", "wo"]}).peft_config(None)
    with pytest.raises(ConfigError, match="subset"):
        from slopeft.methods.base import MethodContext

        IA3({"target_modules": ["k", "v"], "feedforward_modules": ["wo"]}).peft_config(
            MethodContext("seq2seq", "t5", [], "SEQ_2_SEQ_LM")
        )
