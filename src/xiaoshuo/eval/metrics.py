"""Style features of a Chinese text and one combined **style distance** between two texts.

Every feature is a pure function of strings, fast enough for a whole book (a 3,000-字 chapter profiles in
a few milliseconds), with no model and no segmenter (characters are the unit, as 字数 is):

* character **unigram** and **bigram** distributions, compared by Jensen–Shannon divergence (base 2, so
  0 = identical distributions, 1 = no character in common);
* **sentence lengths** in 字 (sentence ends as the writing core finds them,
  :func:`xiaoshuo.writing.textstats.sentence_ends`), compared by the Kolmogorov–Smirnov statistic (the
  largest gap between the two cumulative distributions, 0–1);
* **dialogue share**: the share of 字 inside 「」『』“” quotes;
* **punctuation profile**: uses per 100 字 of ，。！？…—、；：, compared by Bray–Curtis dissimilarity (0–1);
* **function words** (的 了 着 过 地 得 把 被 就 都 也 还 又 便 却 …) per 1,000 字, compared by Burrows'
  Delta: the mean absolute difference of z-scores, the z-scores taken over a reference corpus (by default
  600-字 slices of the two texts themselves);
* **lexical richness**: moving-average type-token ratio (MATTR) over characters, window 500;
* **paragraph length**: mean 字 per non-empty line.

:func:`style_distance` combines them into one number in [0, 1] (the weights are :data:`WEIGHTS`; see its
docstring).  This module measures text; it does not read novels, call models or write anything.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from xiaoshuo.writing.textstats import count_chars, ngram_list, sentence_ends

PUNCTUATION = "，。！？…—、；："
FUNCTION_WORDS = (
    "的", "了", "着", "过", "地", "得", "把", "被", "就", "都", "也", "还", "又", "便", "却",
    "在", "是", "不", "这", "那", "和", "与", "而", "之", "其", "向", "从", "对", "给", "让",
)  # fmt: skip
OPEN_QUOTES = {"「": "」", "『": "』", "“": "”"}
MATTR_WINDOW = 500
DELTA_SLICE = 600
_WS = re.compile(r"\s+")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

#: Weights of the features in :func:`style_distance` (components, each in [0, 1]).
WEIGHTS = {
    "char_jsd": 1.0,
    "bigram_jsd": 1.0,
    "sentence_ks": 1.0,
    "dialogue": 1.0,
    "punctuation": 1.0,
    "function_delta": 1.0,
    "mattr": 0.5,
    "paragraph": 0.5,
}


# ----------------------------------------------------------------------------- distributions
def char_counts(text: str) -> Counter[str]:
    """Every non-whitespace character (汉字, punctuation, letters) and its count."""
    return Counter(_WS.sub("", text))


def bigram_counts(text: str) -> Counter[str]:
    """Character bigrams (whitespace ignored, as the writing core's n-grams are)."""
    return Counter(ngram_list(text, 2))


def jensen_shannon(p: Counter[str], q: Counter[str]) -> float:
    """Jensen–Shannon divergence (base 2) of two count tables: 0 identical … 1 disjoint."""
    np_, nq = sum(p.values()), sum(q.values())
    if np_ == 0 and nq == 0:
        return 0.0
    if np_ == 0 or nq == 0:
        return 1.0
    total = 0.0
    for key in p.keys() | q.keys():
        a, b = p.get(key, 0) / np_, q.get(key, 0) / nq
        m = (a + b) / 2
        if a:
            total += a * math.log2(a / m)
        if b:
            total += b * math.log2(b / m)
    return min(1.0, max(0.0, total / 2))


# ----------------------------------------------------------------------------- sentences, dialogue
def sentence_lengths(text: str) -> list[int]:
    """字 of each sentence (a trailing piece without an end counts as one)."""
    out, start = [], 0
    for end in [*sentence_ends(text), len(text)]:
        n = count_chars(text[start:end])
        if n:
            out.append(n)
        start = end
    return out


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov–Smirnov statistic: the largest gap between the empirical CDFs (0–1)."""
    if not a and not b:
        return 0.0
    if not a or not b:
        return 1.0
    xs, ys = sorted(a), sorted(b)
    i = j = 0
    gap = 0.0
    while i < len(xs) and j < len(ys):
        v = min(xs[i], ys[j])
        while i < len(xs) and xs[i] == v:
            i += 1
        while j < len(ys) and ys[j] == v:
            j += 1
        gap = max(gap, abs(i / len(xs) - j / len(ys)))
    return gap


def dialogue_share(text: str) -> float:
    """Share of 字 inside 「」『』“” quotes (the quote marks not counted; an unclosed quote runs to the
    end of its paragraph)."""
    total = count_chars(text)
    if not total:
        return 0.0
    inside, closer = 0, ""
    for ch in text:
        if closer:
            if ch == closer or ch == "\n":
                closer = ""
            elif not ch.isspace():
                inside += 1
        elif ch in OPEN_QUOTES:
            closer = OPEN_QUOTES[ch]
    return inside / total


def punctuation_profile(text: str) -> dict[str, float]:
    """Uses per 100 字 of each mark in :data:`PUNCTUATION` (a run of …… or —— counts once)."""
    total = count_chars(text)
    squeezed = re.sub(r"…+", "…", re.sub(r"—+", "—", text))
    counts = Counter(ch for ch in squeezed if ch in PUNCTUATION)
    return {p: (100.0 * counts.get(p, 0) / total if total else 0.0) for p in PUNCTUATION}


def bray_curtis(a: dict[str, float], b: dict[str, float]) -> float:
    """Bray–Curtis dissimilarity Σ|a−b| / Σ(a+b): 0 equal profiles … 1 nothing shared."""
    keys = a.keys() | b.keys()
    den = sum(a.get(k, 0.0) + b.get(k, 0.0) for k in keys)
    if den == 0:
        return 0.0
    return sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in keys) / den


# ----------------------------------------------------------------------------- function words
def function_word_freqs(text: str) -> list[float]:
    """Uses per 1,000 字 of each of :data:`FUNCTION_WORDS` (a character, counted wherever it occurs)."""
    total = count_chars(text)
    counts = Counter(ch for ch in text if ch in _FW)
    return [1000.0 * counts.get(w, 0) / total if total else 0.0 for w in FUNCTION_WORDS]


_FW = frozenset(FUNCTION_WORDS)


@dataclass
class DeltaReference:
    """Mean and standard deviation of each function word's frequency over a reference corpus."""

    mean: list[float]
    std: list[float]

    @classmethod
    def of(cls, freqs: Iterable[Sequence[float]]) -> DeltaReference:
        rows = [list(r) for r in freqs]
        n = len(rows)
        if n == 0:
            return cls([0.0] * len(FUNCTION_WORDS), [1.0] * len(FUNCTION_WORDS))
        mean = [sum(col) / n for col in zip(*rows, strict=True)]
        std = [
            math.sqrt(sum((x - m) ** 2 for x in col) / max(1, n - 1))
            for col, m in zip(zip(*rows, strict=True), mean, strict=True)
        ]
        return cls(mean, std)

    @classmethod
    def from_texts(cls, texts: Iterable[str], slice_chars: int = DELTA_SLICE) -> DeltaReference:
        """Frequencies of ``slice_chars``-字 slices of ``texts`` (a text shorter than that is one slice)."""
        return cls.of(function_word_freqs(s) for t in texts for s in slices(t, slice_chars))


def slices(text: str, size: int) -> list[str]:
    """``text`` without whitespace in consecutive pieces of ``size`` 字 (the last one kept if ≥ size/2)."""
    s = _WS.sub("", text)
    if len(s) <= size:
        return [s] if s else []
    out = [s[i : i + size] for i in range(0, len(s), size)]
    if len(out) > 1 and len(out[-1]) < size // 2:
        out.pop()
    return out


def burrows_delta(a: Sequence[float], b: Sequence[float], ref: DeltaReference) -> float:
    """Burrows' Delta: mean |z(a) − z(b)| over the function words, z-scored with ``ref``.

    Words that do not vary in the reference (std 0) are left out; 0.0 when none vary.
    """
    diffs = [abs(x - y) / s for x, y, s in zip(a, b, ref.std, strict=True) if s > 1e-9]
    return sum(diffs) / len(diffs) if diffs else 0.0


# ----------------------------------------------------------------------------- richness, paragraphs
def mattr(text: str, window: int = MATTR_WINDOW) -> float:
    """Moving-average type-token ratio over 汉字 (tokens = characters): the mean share of distinct
    characters in every window of ``window`` characters; the plain TTR for a shorter text."""
    chars = _HAN.findall(text)
    n = len(chars)
    if n == 0:
        return 0.0
    if n <= window:
        return len(set(chars)) / n
    counts: Counter[str] = Counter(chars[:window])
    total = len(counts)
    for i in range(window, n):
        new, old = chars[i], chars[i - window]
        counts[new] += 1
        counts[old] -= 1
        if counts[old] == 0:
            del counts[old]
        total += len(counts)
    return total / (n - window + 1) / window


def paragraph_lengths(text: str) -> list[int]:
    """字 of each non-empty line (a novel's paragraph)."""
    return [n for n in (count_chars(line) for line in text.splitlines()) if n]


# ----------------------------------------------------------------------------- profile and distance
@dataclass
class StyleProfile:
    """Everything :func:`style_distance` compares, computed once per text."""

    chars: int
    char_counts: Counter[str] = field(repr=False)
    bigram_counts: Counter[str] = field(repr=False)
    sentence_lengths: list[int] = field(repr=False)
    dialogue_share: float
    punctuation: dict[str, float]
    function_words: list[float]
    mattr: float
    paragraph_mean: float
    text_slices: list[str] = field(repr=False, default_factory=list)

    def summary(self) -> dict[str, float]:
        """The scalar features, for reports."""
        sl = self.sentence_lengths
        return {
            "chars": self.chars,
            "sentence_mean": round(sum(sl) / len(sl), 2) if sl else 0.0,
            "dialogue_share": round(self.dialogue_share, 4),
            "punctuation_per_100": round(sum(self.punctuation.values()), 3),
            "mattr": round(self.mattr, 4),
            "paragraph_mean": round(self.paragraph_mean, 2),
        }


def profile(text: str) -> StyleProfile:
    paragraphs = paragraph_lengths(text)
    return StyleProfile(
        chars=count_chars(text),
        char_counts=char_counts(text),
        bigram_counts=bigram_counts(text),
        sentence_lengths=sentence_lengths(text),
        dialogue_share=dialogue_share(text),
        punctuation=punctuation_profile(text),
        function_words=function_word_freqs(text),
        mattr=mattr(text),
        paragraph_mean=sum(paragraphs) / len(paragraphs) if paragraphs else 0.0,
        text_slices=slices(text, DELTA_SLICE),
    )


def _relative_gap(a: float, b: float) -> float:
    top = max(abs(a), abs(b))
    return abs(a - b) / top if top else 0.0


def style_components(
    a: str | StyleProfile, b: str | StyleProfile, *, reference: DeltaReference | None = None
) -> dict[str, float]:
    """Each feature's distance between ``a`` and ``b``, every one in [0, 1]."""
    pa = a if isinstance(a, StyleProfile) else profile(a)
    pb = b if isinstance(b, StyleProfile) else profile(b)
    if reference is None:
        reference = DeltaReference.of(function_word_freqs(s) for s in [*pa.text_slices, *pb.text_slices])
    delta = burrows_delta(pa.function_words, pb.function_words, reference)
    return {
        "char_jsd": jensen_shannon(pa.char_counts, pb.char_counts),
        "bigram_jsd": jensen_shannon(pa.bigram_counts, pb.bigram_counts),
        "sentence_ks": ks_statistic(pa.sentence_lengths, pb.sentence_lengths),
        "dialogue": abs(pa.dialogue_share - pb.dialogue_share),
        "punctuation": bray_curtis(pa.punctuation, pb.punctuation),
        "function_delta": delta / (1.0 + delta),
        "mattr": _relative_gap(pa.mattr, pb.mattr),
        "paragraph": _relative_gap(pa.paragraph_mean, pb.paragraph_mean),
    }


def style_distance(
    a: str | StyleProfile, b: str | StyleProfile, *, reference: DeltaReference | None = None
) -> float:
    """One number for "how differently are these two texts written", in [0, 1].

    The weighted mean (:data:`WEIGHTS`) of the feature distances of :func:`style_components`: character
    unigram and bigram JSD, the sentence-length KS statistic, the absolute difference of dialogue shares,
    the punctuation profiles' Bray–Curtis dissimilarity, Burrows' Delta squashed to Delta/(1+Delta), and
    the relative gaps of MATTR and mean paragraph length (half weight: they are coarse).  Identical texts
    give 0; the same characters shuffled keep the unigram term at 0 but not the rest.  Two samples of the
    same author are not 0 (sampling noise grows as texts get shorter): compare distances measured on
    texts of similar length, never a distance with a fixed threshold across lengths.
    """
    parts = style_components(a, b, reference=reference)
    return sum(WEIGHTS[k] * v for k, v in parts.items()) / sum(WEIGHTS.values())
