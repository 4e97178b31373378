"""Machine translation Slovene ↔ English (the SloBench SLO→ENG and ENG→SLO boards).

Default data: NTREX-128 for training, the FLORES-200 dev subset for validation and
FLORES-200 devtest for test (the boards' own test sets are withheld). Any line-aligned
parallel files can replace the training set: a folder holding ``<lang>.txt`` files
(``train_set=/path/to/folder``) or two explicit files (``train_files=(src, tgt)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slopeft.data.catalogue import Dataset, Source, register_dataset
from slopeft.data.convert import convert_mt
from slopeft.data.readers import read_lines, read_parallel
from slopeft.errors import ConfigError, SubmissionError
from slopeft.metrics.statistics import MetricStatistics
from slopeft.tasks.base import TASKS, Example, Split, TaskSpec
from slopeft.tasks.line_based import LineSubmissionTask
from slopeft.tasks.reading import lone_carriage_returns

SPLIT_FOLDERS = {"train": "ntrex128", "val": "flores200-dev-subset", "test": "flores200-devtest"}
MT_METRICS = (
    "BLEU (avg)",
    "BLEU (corpus)",
    "METEOR (avg)",
    "chrF (avg)",
    "chrF (corpus)",
    "sacreBLEU BLEU",
    "sacreBLEU chrF++",
)
# Slovene names of the languages for the prompt: (genitive "from ...", the label before a sentence).
LANGUAGE_NAMES = {"sl": ("slovenščine", "Slovensko"), "en": ("angleščine", "Angleško")}
LANGUAGE_TARGETS = {"sl": "slovenščino", "en": "angleščino"}  # accusative "into ..."

_NTREX = "https://raw.githubusercontent.com/MicrosoftTranslator/NTREX/main/"
_NTREX_EVIDENCE = (
    "github.com/MicrosoftTranslator/NTREX README.md (data structure, CC BY-SA 4.0); the same raw "
    "main-branch URLs are used by e.g. the SEACrowd ntrex_128 loader"
)
DATASET = register_dataset(
    Dataset(
        name="mt",
        probe="mt/ntrex128",
        layout=(
            "  <root>/mt/ntrex128/{en,sl}.txt and document_ids.tsv\n"
            "  <root>/mt/flores200-dev-subset/{en,sl}.txt  (a download provides the full mt/flores200-dev/)\n"
            "  <root>/mt/flores200-devtest/{en,sl}.txt"
        ),
        sources=(
            Source(
                "ntrex_en",
                _NTREX + "NTREX-128/newstest2019-src.eng.txt",
                None,
                "CC BY-SA 4.0",
                "NTREX-128 English source (WMT19 newstest, 1,997 lines) -> mt/ntrex128/en.txt",
                _NTREX_EVIDENCE,
            ),
            Source(
                "ntrex_sl",
                _NTREX + "NTREX-128/newstest2019-ref.slv.txt",
                None,
                "CC BY-SA 4.0",
                "NTREX-128 Slovene reference translation -> mt/ntrex128/sl.txt",
                _NTREX_EVIDENCE,
            ),
            Source(
                "ntrex_docs",
                _NTREX + "DOCUMENT_IDS.tsv",
                None,
                "CC BY-SA 4.0",
                "NTREX-128 line-aligned document ids -> mt/ntrex128/document_ids.tsv",
                _NTREX_EVIDENCE,
            ),
            Source(
                "flores",
                "https://dl.fbaipublicfiles.com/nllb/flores200_dataset.tar.gz",
                "b8b0b76783024b85797e5cc75064eb83fc5288b41e9654dabc7be6ae944011f6",
                "CC BY-SA 4.0",
                "FLORES-200 (eng_Latn, slv_Latn): the full dev split -> mt/flores200-dev/ (the shipped "
                "533-line flores200-dev-subset cannot be re-derived) and devtest -> mt/flores200-devtest/",
                "github.com/facebookresearch/flores flores200/README.md (download link tinyurl.com/"
                "flores200dataset, which resolves to this file); sha256 and size 25,585,843 B published in "
                "the MLCommons Croissant spec's example and pinned by several projects",
            ),
        ),
        convert=convert_mt,
    )
)


class TranslationTask(LineSubmissionTask):
    source_language: str
    target_language: str
    bom_effect = (
        "it becomes part of the first token of line 1, which then matches no reference token (a "
        "lower score, and no error to tell you)."
    )

    def __init__(
        self,
        data_dir: Path | str | None = None,
        train_set: str = "ntrex128",
        train_files: tuple[Path | str, Path | str] | None = None,
        test_source: Path | str | None = None,
        nltk: str | None = None,
    ) -> None:
        from slopeft.metrics.mt.scores import DEFAULT_NLTK, check_nltk_version

        # Which NLTK release's tokenization the metrics reproduce (the evaluator's pin, or its first).
        self.nltk = check_nltk_version(nltk or DEFAULT_NLTK)
        custom_folder = train_set != "ntrex128"
        if custom_folder:
            folder = Path(train_set).expanduser()
            if not folder.is_dir():
                raise ConfigError(
                    f"{self.spec.name}: training set {train_set!r} is neither 'ntrex128' nor a "
                    f"folder. Pass a folder holding {self.source_language}.txt and "
                    f"{self.target_language}.txt, or --train-src/--train-tgt."
                )
            train_files = (folder / f"{self.source_language}.txt", folder / f"{self.target_language}.txt")
        super().__init__(data_dir, "ntrex128")
        self.train_set = train_set
        self.train_files = tuple(Path(p).expanduser() for p in train_files) if train_files else None
        # The boards' own test sources (1,233 SLO→ENG / 1,232 ENG→SLO lines) are withheld from the
        # public data; whoever has them passes the source file and the test split becomes those lines.
        self.test_source = Path(test_source).expanduser() if test_source else None

    def source_files(self, split: Split) -> list[Path]:
        if split == "test" and self.test_source:
            return [self.test_source]
        if split == "train" and self.train_files:
            return list(self.train_files)
        folder = self.location.root / "mt" / SPLIT_FOLDERS[split]
        if split == "val" and not folder.exists() and (self.location.root / "mt" / "flores200-dev").exists():
            # A downloaded copy has the full FLORES-200 dev; the shipped 533-line subset is not reproducible.
            folder = self.location.root / "mt" / "flores200-dev"
        return [folder / f"{self.source_language}.txt", folder / f"{self.target_language}.txt"]

    def _load(self, split: Split) -> list[Example]:
        if split == "test" and self.test_source:
            return [Example(i, {"source": s}) for i, s in enumerate(read_lines(self.test_source))]
        source, target = read_parallel(*self.source_files(split))
        return [Example(i, {"source": s}, t) for i, (s, t) in enumerate(zip(source, target, strict=True))]

    def metrics(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> dict[str, float]:
        from slopeft.metrics.mt import mt_scores

        references, hypotheses = self.aligned(predictions, examples)
        scores = mt_scores(hypotheses, references, self.target_language, nltk=self.nltk)
        # Which metrics could not be computed exactly, and which lines the evaluator would fail on, are
        # only known while scoring; keep them for the report.
        self._unavailable = scores.unavailable
        self._warnings = [w] if (w := scores.warning()) else []
        return scores.metrics

    def metric_statistics(self, predictions: Mapping[int, Any], examples: Sequence[Example]) -> MetricStatistics:
        from slopeft.metrics.mt import mt_segment_statistics

        references, hypotheses = self.aligned(predictions, examples)
        return mt_segment_statistics(hypotheses, references, self.target_language, nltk=self.nltk)

    def metric_notes(self) -> dict[str, str]:
        return dict(getattr(self, "_unavailable", {}))

    def metric_warnings(self) -> list[str]:
        return list(getattr(self, "_warnings", []))

    def scoring(self) -> dict[str, str]:
        return {"nltk": self.nltk}

    def format_line(self, prediction: Any) -> str:
        # A leading U+FEFF on line 1 would be a byte-order mark, which the evaluator keeps in the first
        # token; our files never start with one.
        return str(prediction).replace("\n", " ").replace("\r", " ").lstrip("\ufeff")

    def check_text(self, name: str, text: str) -> None:
        if numbers := lone_carriage_returns(text):
            raise SubmissionError(
                f"{name}: line(s) {', '.join(map(str, numbers[:8]))} hold a carriage return (\\r) not "
                "followed by a line feed. The evaluator reads lines with Python's universal newlines, so "
                "it ends a line there and every later translation lands on the wrong source line. Replace "
                "those carriage returns with spaces."
            )

    def check_lines(self, name: str, lines: list[str]) -> None:
        from slopeft.metrics.mt.scores import LANGUAGES, crash_reason, evaluator_crash_lines

        crashed = evaluator_crash_lines(lines, LANGUAGES[self.target_language], self.nltk)
        if crashed:
            raise SubmissionError(f"{name}: {crash_reason({'translation': crashed}, self.nltk)}")

    def local_test_note(self) -> str | None:
        if self.test_source:
            return None
        return (
            "Checked against the local test split (FLORES-200 devtest): the leaderboard's own test "
            "source is withheld; pass it with --test-src to check a leaderboard submission"
        )


def _mt_spec(source: str, target: str) -> TaskSpec:
    (source_from, source_label), (_, target_label) = LANGUAGE_NAMES[source], LANGUAGE_NAMES[target]
    return TaskSpec(
        name=f"mt/{source}-{target}",
        kind="translation",
        labels=None,
        metric_names=MT_METRICS,
        main_metric="chrF (corpus)",
        dataset="mt",
        train_sets=("ntrex128",),
        text_fields=("source",),
        description=f"translate {source.upper()} → {target.upper()}",
        prompt=f"Prevedi iz {source_from} v {LANGUAGE_TARGETS[target]}.\n{source_label}: {{source}}\n{target_label}:",
        options=("train_files", "test_source", "nltk"),
        validation="the FLORES-200 dev subset",
    )


@TASKS.register("mt/sl-en")
class SloveneToEnglish(TranslationTask):
    source_language, target_language = "sl", "en"
    spec = _mt_spec("sl", "en")


@TASKS.register("mt/en-sl")
class EnglishToSlovene(TranslationTask):
    source_language, target_language = "en", "sl"
    spec = _mt_spec("en", "sl")
