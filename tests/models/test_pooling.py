"""Mean pooling for mean-pooled checkpoints (e5): the classifier reads the masked token mean."""

from __future__ import annotations

import json

import torch

from slopeft.models.heads.pooling import pooling_of, use_mean_pooling
from slopeft.models.tiny import make_tiny_model
from tests.tolerance import assert_close


def test_first_position_becomes_the_masked_mean(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = make_tiny_model("bert", tmp_path / "bert")
    assert pooling_of(folder) == "first"
    (folder / "slopeft_model.json").write_text(json.dumps({"pooling": "mean"}))
    assert pooling_of(folder) == "mean"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2).eval()
    short = tokenizer(["Dober dan."], return_tensors="pt")
    padded = tokenizer(["Dober dan.", "To je precej daljši stavek o Ljubljani in Sloveniji."], padding=True,
                       return_tensors="pt")
    with torch.no_grad():
        plain_hidden = model.bert(**short).last_hidden_state
        use_mean_pooling(model)
        pooled_hidden = model.bert(**short).last_hidden_state
        assert_close(pooled_hidden[0, 0], plain_hidden[0].mean(0))
        assert torch.equal(pooled_hidden[:, 1:], plain_hidden[:, 1:])
        # Padding does not enter the mean: the short row scores the same alone and in a padded batch.
        alone = model(**short).logits[0]
        in_batch = model(**padded).logits[0]
    assert_close(alone, in_batch)
