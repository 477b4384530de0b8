"""Template similarity of persons: the sparse product finds exactly the pairs a dense one does,
and trigrams shared by too many profiles say nothing."""

from __future__ import annotations

import random

import numpy as np
import pytest

from matching import templates
from matching.templates import template_matches

_WORDS = ["".join(random.Random(i).choices("abcdefghij", k=5)) for i in range(200)]
_PHRASES = [" ".join(random.Random(i).choices(_WORDS, k=6)) for i in range(60)]


def corpus(seed: int, persons: int = 80) -> dict[int, list[tuple[str, str | None]]]:
    """Persons writing ads from a small phrase pool, in two languages (by their common words),
    some sharing a 'template' (a fixed choice of phrases), with nicknames and numbers."""
    rng = random.Random(seed)
    groups = [rng.sample(range(len(_PHRASES)), 4) for _ in range(16)]
    texts: dict[int, list[tuple[str, str | None]]] = {}
    for person in range(persons):
        group = rng.choice(groups)
        ads = []
        for _ in range(rng.randint(1, 4)):
            lang = "ik ben de en het" if rng.random() < 0.6 else "i am the and you"
            chosen = [g if rng.random() < 0.8 else rng.randrange(len(_PHRASES)) for g in group]
            nick = "".join(random.Random(person).choices("klmnop", k=6))
            body = f" {rng.choice(['*', '~', '|'])} ".join(_PHRASES[c] for c in chosen)
            ads.append((f"{nick} {lang} {body} {rng.randint(100, 300)} euro", nick))
        texts[person] = ads
    texts[persons] = []  # a person without texts has no profile
    return texts


def brute_force(
    texts: dict[int, list[tuple[str, str | None]]], threshold: float
) -> dict[tuple[int, int], tuple[float, set[str]]]:
    """Every pair of profiles compared, densely: the best similarity of each pair of persons
    at ``threshold`` or more, with the languages in which it is reached."""
    profiles, keys = templates._profiles(texts)
    dense = templates._weighted(profiles, len(keys)).toarray()
    similarity = dense @ dense.T
    best: dict[tuple[int, int], tuple[float, set[str]]] = {}
    for i, (person_i, lang_i) in enumerate(keys):
        for j, (person_j, lang_j) in enumerate(keys):
            value = float(similarity[i, j])
            if person_i >= person_j or lang_i != lang_j or value < threshold:
                continue
            old, langs = best.get((person_i, person_j), (0.0, set()))
            if value > old + 1e-9:
                best[(person_i, person_j)] = (value, {lang_i})
            elif value > old - 1e-9:
                langs.add(lang_i)
    return best


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("threshold", [0.05, 0.3])
def test_template_matches_are_exactly_the_dense_pairs(seed: int, threshold: float) -> None:
    texts = corpus(seed)
    found = template_matches(texts, threshold, neighbours=len(texts))
    expected = brute_force(texts, threshold)
    assert len(expected) > 20
    assert [(m.person_a, m.person_b) for m in found] == sorted(expected)
    for match in found:
        value, languages = expected[(match.person_a, match.person_b)]
        assert match.similarity == pytest.approx(value, abs=1e-4)
        assert match.language in languages


@pytest.mark.parametrize("neighbours", [1, 3, 10])
def test_each_profile_keeps_its_nearest(neighbours: int) -> None:
    """A pair is kept when it is among the ``neighbours`` most similar of either person (these
    persons write in one language, so a person is one profile)."""
    texts = {
        p: [(t.replace("i am the and you", "ik ben de en het"), n) for t, n in ads]
        for p, ads in corpus(5).items()
    }
    every = brute_force(texts, 0.05)
    by_person: dict[int, list[tuple[float, int]]] = {}
    for (a, b), (value, _langs) in every.items():
        by_person.setdefault(a, []).append((value, b))
        by_person.setdefault(b, []).append((value, a))
    nearest = set()
    for person, others in by_person.items():
        for _value, other in sorted(others, key=lambda o: (-o[0], o[1]))[:neighbours]:
            nearest.add((min(person, other), max(person, other)))
    found = template_matches(texts, 0.05, neighbours=neighbours)
    assert {(m.person_a, m.person_b) for m in found} == nearest
    assert len(nearest) < len(every)


def test_trigrams_of_too_many_profiles_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = corpus(4, persons=120)
    monkeypatch.setattr(templates, "MAX_SHARED_PROFILES", 5)
    profiles, keys = templates._profiles(texts)
    matrix = templates._weighted(profiles, len(keys))
    per_trigram = np.diff(matrix.tocsc().indptr)
    assert per_trigram.max() <= 5  # so the product costs at most 5 x its entries
    assert matrix.nnz > 0
    # Two persons who share only a phrase that many others use are not alike; two who share a
    # phrase of their own are.
    common = "ik ben de en het alleen vandaag open tot laat bel nu"
    rare = "zeldzame woorden die alleen zij tweeen schrijven"
    many = {p: [(f"{common} plus {p} eigen tekst hier nummer {p}", None)] for p in range(20)}
    many[20] = [(f"{common} {rare}", None)]
    many[21] = [(f"{rare} {common}", None)]
    pairs = {(m.person_a, m.person_b) for m in template_matches(many, 0.05)}
    assert (20, 21) in pairs
    assert not any(a < 20 and b < 20 for a, b in pairs)


def test_no_profiles_no_matches() -> None:
    assert template_matches({}) == []
    assert template_matches({1: [("ik ben er een paar dagen", None)]}) == []
