"""Which persons' ads are written from one text template: evidence of one network.

A network writes its women's ads from a template: the same phrases, separators and layout, with
the woman's name, place, prices and number filled in. Two ads of different women are rarely
near-duplicates (the filled-in parts differ), but all the ads of one woman, taken together, use
the network's phrases again and again. So the comparison is between persons:

* each ad becomes word trigrams of its title and text, with digits and the ad's own nickname
  masked (they are what a template fills in) and separators kept as tokens;
* the ads of one person in one language (guessed from common words) form a profile: for each
  trigram, the share of her distinct texts that use it;
* profiles are weighted by inverse document frequency over all profiles, trigrams used by more
  than :data:`MAX_PROFILE_SHARE` of the profiles are dropped (every ad says "call me"), and
  two persons' similarity is the best cosine similarity of their profiles in a common language.

A single similarity says little: on the demo world (seed 1), about a third of the pairs of
women of one network reach 0.4, and about one pair in 3,500 of women of different
networks does too. :mod:`matching.networks` therefore merges groups of persons by their
*average* similarity. Pairs at :data:`LINK_SIMILARITY` or more are stored as ``text`` links
for analysts.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

# Lower similarities are taken as none. Known shortcoming at scale: at 0.05 most pairs of
# persons are kept (bench world, 100,000 observations: 6,850 MiB peak, 1,940 s in the network
# stage); raising it changes which networks are joined, so it needs the demo evaluation first.
MIN_SIMILARITY = 0.05
LINK_SIMILARITY = 0.3  # pairs stored as ``text``/``network`` links, as evidence for analysts
MAX_PROFILE_SHARE = 0.2
_NGRAM = 3
_BLOCK = 2_000  # profiles per block of the similarity product
_TOKEN = re.compile(r"[^\W\d_]+|\d+|[*~|•!]+|\n")
_LETTERS = re.compile(r"[^\W\d_]+")
_STOPWORDS = {
    "nl": frozenset(
        [
            "ik",
            "en",
            "de",
            "het",
            "een",
            "van",
            "bij",
            "je",
            "niet",
            "alleen",
            "voor",
            "met",
            "mij",
            "ben",
        ]
    ),
    "en": frozenset(
        ["i", "the", "and", "you", "me", "for", "with", "my", "am", "only", "call", "to", "your"]
    ),
    "ro": frozenset(
        ["si", "sunt", "la", "de", "cu", "pentru", "doar", "te", "sa", "din", "astept", "ma"]
    ),
}


@dataclass(frozen=True)
class TemplateMatch:
    person_a: int
    person_b: int
    similarity: float
    language: str


def tokens(text: str, nickname: str | None) -> list[str]:
    """Lower-case tokens with digits as ``#``, the nickname as ``@`` and line breaks kept."""
    name = set(_LETTERS.findall((nickname or "").casefold()))
    found = []
    for token in _TOKEN.findall(text.casefold()):
        if token.isdigit():
            token = "#"
        elif token in name:
            token = "@"
        elif token == "\n":
            token = "<br>"
        found.append(token)
    return found


def language_of(words: Sequence[str]) -> str:
    """The language whose common words the text uses most (``nl`` on a tie)."""
    present = set(words)
    return max(_STOPWORDS, key=lambda lang: (len(present & _STOPWORDS[lang]), lang == "nl"))


def _ngrams(words: Sequence[str]) -> set[str]:
    return {" ".join(words[i : i + _NGRAM]) for i in range(len(words) - _NGRAM + 1)}


def template_matches(
    texts: Mapping[int, Iterable[tuple[str, str | None]]],
    threshold: float = MIN_SIMILARITY,
) -> list[TemplateMatch]:
    """Person pairs whose template similarity is ``threshold`` or more; ``texts``: person ->
    (text, nickname) of her ads."""
    profiles, keys = _profiles(texts)
    if len(keys) < 2:
        return []
    matrix = _weighted(profiles, len(keys))
    transposed = matrix.T.tocsc()
    persons = np.array([person for person, _ in keys])
    languages = np.unique([lang for _, lang in keys], return_inverse=True)[1]
    best: dict[tuple[int, int], tuple[float, str]] = {}
    for start in range(0, matrix.shape[0], _BLOCK):
        # Row blocks keep memory bounded: the full product of many profiles is mostly noise.
        block = (matrix[start : start + _BLOCK] @ transposed).tocoo()
        rows, cols = block.row + start, block.col
        keep = (
            (block.data >= threshold)
            & (persons[rows] < persons[cols])
            & (languages[rows] == languages[cols])
        )
        for i, j, value in zip(rows[keep], cols[keep], block.data[keep], strict=True):
            pair = (keys[i][0], keys[j][0])
            if value > best.get(pair, (0.0, ""))[0]:
                best[pair] = (float(value), keys[i][1])
    return [
        TemplateMatch(a, b, round(value, 4), lang) for (a, b), (value, lang) in sorted(best.items())
    ]


def _profiles(
    texts: Mapping[int, Iterable[tuple[str, str | None]]],
) -> tuple[list[dict[str, float]], list[tuple[int, str]]]:
    counts: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)
    documents: Counter[tuple[int, str]] = Counter()
    for person, ads in texts.items():
        for text in {(t, n) for t, n in ads if t}:
            words = tokens(*text)
            key = (person, language_of(words))
            documents[key] += 1
            counts[key].update(_ngrams(words))
    keys = sorted(counts)
    profiles = [{gram: n / documents[key] for gram, n in counts[key].items()} for key in keys]
    return profiles, keys


def _weighted(profiles: list[dict[str, float]], n_profiles: int) -> sparse.csr_matrix:
    frequency: Counter[str] = Counter(g for profile in profiles for g in profile)
    limit = max(2.0, MAX_PROFILE_SHARE * n_profiles)
    vocabulary = {g: i for i, g in enumerate(sorted(g for g, f in frequency.items() if f <= limit))}
    rows, cols, values = [], [], []
    for row, profile in enumerate(profiles):
        for gram, share in profile.items():
            col = vocabulary.get(gram)
            if col is not None:
                rows.append(row)
                cols.append(col)
                values.append(share * math.log(n_profiles / frequency[gram]))
    matrix = sparse.csr_matrix(
        (np.array(values, dtype=np.float64), (rows, cols)),
        shape=(len(profiles), len(vocabulary)),
    )
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / norms) @ matrix)
