"""The SloBench machine-translation metrics: tokenisation, METEOR and the scores, as the evaluator computes them."""

from slopeft.metrics.mt.scores import (
    NLTK_METRICS,
    SACREBLEU_METRICS,
    MTScores,
    mt_scores,
    mt_segment_statistics,
)

__all__ = ["NLTK_METRICS", "SACREBLEU_METRICS", "MTScores", "mt_scores", "mt_segment_statistics"]
