"""Which persons' ads are written from one text template: evidence of one network.

A network writes its women's ads from a template: the same phrases, separators and layout, with
the woman's name, place, prices and number filled in. Two ads of different women are rarely
near-duplicates (the filled-in parts differ), but all the ads of one woman, taken together, use
the network's phrases again and again. So the comparison is between persons:

* each ad becomes word trigrams of its title and text, with digits and the ad's own nickname
  masked (they are what a template fills in) and separators kept as tokens;
* the ads of one person in one language (guessed from common words) form a profile: for each
  trigram, the share of her distinct texts that use it;
* profiles are weighted by inverse document frequency over all profiles; trigrams used by more
  than :data:`MAX_PROFILE_SHARE` of the profiles, or by more than :data:`MAX_SHARED_PROFILES`
  profiles, are dropped (every ad says "call me"), and two persons' similarity is the best
  cosine similarity of their profiles in a common language.

How this stays near-linear in the number of ads, without a candidate step that could miss a
pair:

* an absolute cap, :data:`MAX_SHARED_PROFILES`, besides the share: a network is a handful of
  women (tens of persons at most) and does not grow with the number of ads (more ads means more
  networks), so a trigram in the profiles of more than 100 persons is not one network's
  template but a phrase many write, whatever share of all profiles that is. The sparse product
  of the profile matrix with its transpose costs the sum over trigrams of (profiles using it)
  squared: with the cap, at most 100 times the number of (profile, trigram) entries, and it
  still gives *every* pair's exact similarity;
* each profile keeps its :data:`NEIGHBOURS` most similar profiles (a pair is kept when it is
  among the nearest of either), so the pairs handed to the merging are at most 30 per profile
  instead of nearly all pairs. A network has far fewer persons than that, and the merging's
  average counts a dropped pair as 0, as it counts any pair under the threshold.

Chosen with the demo evaluation (seed 1, full link, ``docs/matching.md`` "Scale"): the demo world
has fewer than 500 profiles, so the share limit is below the cap there, and its figures are the
same with and without both limits. At the bench scale the cap drops the phrases that the
world's small phrase pool makes common to many networks. Other ways were set aside: MinHash LSH
over profiles finds high Jaccard similarity of the unweighted trigram sets, not the idf-weighted
cosine that the merging is tuned on, and misses pairs by design; a cap on posting lists used
only to find candidates would still need the common trigrams' full products for their scores.

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

MIN_SIMILARITY = 0.05  # lower similarities are taken as none
LINK_SIMILARITY = 0.3  # pairs stored as ``text``/``network`` links, as evidence for analysts
MAX_PROFILE_SHARE = 0.2
MAX_SHARED_PROFILES = 100  # trigrams in more profiles than this are no network's own
NEIGHBOURS = 30  # pairs kept per profile: its most similar others
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
    neighbours: int | None = None,
) -> list[TemplateMatch]:
    """Person pairs whose template similarity is ``threshold`` or more, among each profile's
    ``neighbours`` most similar ones (:data:`NEIGHBOURS` by default); ``texts``: person ->
    (text, nickname) of her ads."""
    neighbours = NEIGHBOURS if neighbours is None else neighbours
    profiles, keys = _profiles(texts)
    if len(keys) < 2:
        return []
    matrix = _weighted(profiles, len(keys))
    transposed = matrix.T.tocsc()
    persons = np.array([person for person, _ in keys], dtype=np.int64)
    languages = np.unique([lang for _, lang in keys], return_inverse=True)[1]
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, matrix.shape[0], _BLOCK):
        # Row blocks keep the memory of one step bounded; the whole product is near-linear in
        # size (see the module docstring) but its intermediate arrays are not small.
        block = (matrix[start : start + _BLOCK] @ transposed).tocoo()
        rows, cols = block.row.astype(np.int64) + start, block.col.astype(np.int64)
        keep = (
            (block.data >= threshold)
            & (persons[rows] != persons[cols])
            & (languages[rows] == languages[cols])
        )
        rows, cols, values = rows[keep], cols[keep], block.data[keep]
        rows, cols, values = _nearest(rows, cols, values, neighbours)
        swap = persons[rows] > persons[cols]
        rows, cols = np.where(swap, cols, rows), np.where(swap, rows, cols)
        found.append((rows, cols, values))
    if not found:
        return []
    rows = np.concatenate([f[0] for f in found])
    cols = np.concatenate([f[1] for f in found])
    values = np.concatenate([f[2] for f in found])
    # The best language per pair of persons: sort by pair, then by falling similarity (ties by
    # profile order), and keep each pair's first.
    order = np.lexsort((rows, -values, persons[cols], persons[rows]))
    rows, cols, values = rows[order], cols[order], values[order]
    pair_a, pair_b = persons[rows], persons[cols]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (pair_a[1:] != pair_a[:-1]) | (pair_b[1:] != pair_b[:-1])
    return [
        TemplateMatch(a, b, round(value, 4), keys[row][1])
        for a, b, value, row in zip(
            pair_a[first].tolist(),
            pair_b[first].tolist(),
            values[first].tolist(),
            rows[first].tolist(),
            strict=True,
        )
    ]


def _nearest(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``count`` entries of highest value of each row (ties by column)."""
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    keep = rank < count
    return rows[keep], cols[keep], values[keep]


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
    limit = min(MAX_SHARED_PROFILES, max(2.0, MAX_PROFILE_SHARE * n_profiles))
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
