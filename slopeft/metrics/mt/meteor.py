"""METEOR as NLTK 3.6.5's ``meteor_score`` computes it, on the Debian ``wordnet-base`` files.

Synonyms are read straight from WordNet 3.0 files: NLTK's wordnet corpus is those files, but current
NLTK refuses corpus roots outside nltk_data, and Debian leaves out the ``lexnames`` file NLTK's reader
insists on. The Porter stemmer comes from the installed NLTK (checked at run time by
:mod:`slopeft.metrics.mt.scores`).
"""

from __future__ import annotations

import functools
import itertools
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

WORDNET_DIR = Path("/usr/share/wordnet")  # where Debian's wordnet-base installs WordNet 3.0


_MORPHY_RULES = {
    "n": (
        ("s", ""),
        ("ses", "s"),
        ("ves", "f"),
        ("xes", "x"),
        ("zes", "z"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("men", "man"),
        ("ies", "y"),
    ),
    "v": (
        ("s", ""),
        ("ies", "y"),
        ("es", "e"),
        ("es", ""),
        ("ed", "e"),
        ("ed", ""),
        ("ing", "e"),
        ("ing", ""),
    ),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "r": (),
}
_POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}


class WordNet:
    """The part of NLTK's WordNet reader that METEOR uses: lemma names of a word's synsets."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.index: dict[str, dict[str, list[int]]] = {}  # lemma → pos → synset offsets
        self.exceptions: dict[str, dict[str, list[str]]] = {}  # pos → inflected form → base forms
        for pos, name in _POS_FILES.items():
            with open(directory / f"index.{name}", encoding="utf-8") as f:
                for line in f:
                    if line.startswith(" "):  # licence header
                        continue
                    fields = line.split()
                    n_synsets, n_pointers = int(fields[2]), int(fields[3])
                    self.index.setdefault(fields[0], {})[fields[1]] = [
                        int(o) for o in fields[6 + n_pointers : 6 + n_pointers + n_synsets]
                    ]
            with open(directory / f"{name}.exc", encoding="utf-8") as f:
                self.exceptions[pos] = {t[0]: t[1:] for t in map(str.split, f) if t}
        self._synonyms: dict[str, frozenset[str]] = {}

    def _morphy(self, form: str, pos: str) -> list[str]:
        """NLTK 3.6.5's ``_morphy``: base forms of ``form`` that WordNet has for ``pos``."""

        def known(forms: list[str]) -> list[str]:
            return list(dict.fromkeys(f for f in forms if pos in self.index.get(f, {})))

        if form in self.exceptions[pos]:
            return known([form, *self.exceptions[pos][form]])
        forms = [form[: -len(old)] + new for old, new in _MORPHY_RULES[pos] if form.endswith(old)]
        if found := known([form, *forms]):
            return found
        while forms:
            forms = [
                f[: -len(old)] + new for f in forms for old, new in _MORPHY_RULES[pos] if f.endswith(old)
            ]
            if found := known(forms):
                return found
        return []

    def synonyms(self, word: str) -> frozenset[str]:
        """Names without ``_`` of all lemmas of ``wordnet.synsets(word)``, as METEOR collects them."""
        if (known := self._synonyms.get(word)) is not None:
            return known
        names: set[str] = set()
        for pos, name in _POS_FILES.items():
            offsets = [o for form in self._morphy(word.lower(), pos) for o in self.index[form][pos]]
            if not offsets:
                continue
            with open(self.dir / f"data.{name}", "rb") as data:
                for offset in offsets:  # a synset's offset is the byte position of its line
                    data.seek(offset)
                    fields = data.readline().decode("utf-8").split("|")[0].split()
                    raw = fields[4 : 4 + 2 * int(fields[3], 16) : 2]
                    # An adjective lemma may carry a syntactic marker such as "(a)"; NLTK strips it.
                    names.update(re.sub(r"\(.*\)$", "", n) for n in raw)
        self._synonyms[word] = frozenset(n for n in names if "_" not in n)
        return self._synonyms[word]


def wordnet_problem(directory: Path) -> str | None:
    """Why ``directory`` cannot serve as NLTK's WordNet 3.0, or None if it can."""
    names = [f"{kind}.{pos}" for pos in _POS_FILES.values() for kind in ("index", "data")]
    missing = [
        n for n in (*names, *(f"{p}.exc" for p in _POS_FILES.values())) if not (directory / n).is_file()
    ]
    if missing:
        return (
            f"METEOR needs English WordNet 3.0, but {directory} lacks {', '.join(missing[:3])}"
            f"{' and more' if len(missing) > 3 else ''}; "
            "install it with `apt-get install wordnet-base` (or set $WNSEARCHDIR to a WordNet 3.0 dict folder)."
        )
    with open(directory / "data.adj", encoding="utf-8", errors="replace") as f:
        head = f.read(4096)
    if "WordNet 3.0 Copyright" not in head:
        return f"METEOR needs WordNet 3.0 (NLTK's wordnet corpus), but {directory} holds another version."
    return None


def default_wordnet_dir() -> Path:
    """The WordNet dict folder METEOR reads: ``$WNSEARCHDIR`` (WordNet's own variable), else Debian's."""
    return Path(os.environ.get("WNSEARCHDIR") or WORDNET_DIR)


@functools.cache
def load_wordnet(directory: Path) -> WordNet:
    """The WordNet of ``directory``, read once per process (its indexes take about a second)."""
    return WordNet(directory)


_Words = list[tuple[int, str]]  # (position in the sentence, word)


def _match(
    hyp: _Words, ref: _Words, synonyms: WordNet | None = None
) -> tuple[list[tuple[int, int]], _Words, _Words]:
    """One METEOR matching stage: each hypothesis word, last first, takes the last free reference word
    equal to it (or, with ``synonyms``, among its WordNet synonyms). Returns matches and what is left."""
    matches: list[tuple[int, int]] = []
    hyp, ref = list(hyp), list(ref)
    for i in range(len(hyp) - 1, -1, -1):
        candidates = {hyp[i][1]} if synonyms is None else synonyms.synonyms(hyp[i][1]) | {hyp[i][1]}
        for j in range(len(ref) - 1, -1, -1):
            if ref[j][1] in candidates:
                matches.append((hyp[i][0], ref[j][0]))
                hyp.pop(i)
                ref.pop(j)
                break
    return matches, hyp, ref


def meteor(
    reference: Sequence[str], hypothesis: Sequence[str], stem: Callable[[str], str], wordnet: WordNet
) -> float:
    """NLTK 3.6.5 ``meteor_score([reference], hypothesis)`` with its defaults."""
    hyp = list(enumerate(w.lower() for w in hypothesis))
    ref = list(enumerate(w.lower() for w in reference))
    exact, hyp_left, ref_left = _match(hyp, ref)
    # Like NLTK, the synonym stage sees the *stemmed* leftovers of the stem stage.
    stemmed, hyp_left, ref_left = _match(
        [(i, stem(w)) for i, w in hyp_left], [(i, stem(w)) for i, w in ref_left]
    )
    synonym, _, _ = _match(hyp_left, ref_left, wordnet)
    matches = sorted(exact + stemmed + synonym, key=lambda pair: pair[0])
    chunks = 1 + sum(1 for a, b in itertools.pairwise(matches) if not (b[0] == a[0] + 1 and b[1] == a[1] + 1))
    try:  # same operations in the same order as NLTK, so the floats agree bit for bit
        precision = float(len(matches)) / len(hyp)
        recall = float(len(matches)) / len(ref)
        fmean = (precision * recall) / (0.9 * precision + (1 - 0.9) * recall)
        frag_frac = float(chunks) / len(matches)
    except ZeroDivisionError:
        return 0.0
    return (1 - 0.5 * frag_frac**3.0) * fmean
