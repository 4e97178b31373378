"""Task heads: how a model family reads a task's examples and how its outputs become labels.

The task decides the head (``select_head``): encoders classify text pairs or choices,
causal and seq2seq models score one candidate continuation per label and generate
translations. Every head turns examples into Hugging Face batches whose ``labels`` make
``model(**batch).loss`` the training loss, so one trainer serves them all.
"""

from slopeft.models.heads.base import HEADS, Head, build_head, select_head
from slopeft.models.heads.encoder import EncoderChoiceHead, EncoderPairHead
from slopeft.models.heads.generative import CandidateScoringHead, GenerationHead

__all__ = [
    "HEADS",
    "CandidateScoringHead",
    "EncoderChoiceHead",
    "EncoderPairHead",
    "GenerationHead",
    "Head",
    "build_head",
    "select_head",
]
