"""Benchmark phone extraction against phonenumbers' own PhoneNumberMatcher on the same texts.

Prints, per corpus kind, the recall of both systems (and the numbers each found that the label
does not hold), then texts per second of both over the corpus texts repeated, as a ratio.

Speed is measured twice for ``extract_phones``: *cold*, with its validation cache emptied before
every text (nothing is remembered between ads), and *crawl*, with the cache emptied once per pass
over the corpus (the same numbers recur across ads, as they do in a crawl). Each figure is the
best of ``--rounds`` timed passes, so other work on the machine inflates it least.

    .venv/bin/python bench/phones.py [--repeat 20] [--rounds 5] [--long 12]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import phonenumbers

from pipelines import phones

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "phones.jsonl"

Extractor = Callable[[str, str], list[str]]


def matcher_phones(text: str, region: str) -> list[str]:
    """The baseline: phonenumbers' matcher at its default leniency (VALID)."""
    found = phonenumbers.PhoneNumberMatcher(text, region)
    e164 = (
        phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164) for m in found
    )
    return list(dict.fromkeys(e164))


def ours_cold(text: str, region: str) -> list[str]:
    phones._validate.cache_clear()
    return phones.extract_phones(text, region)


def load_corpus(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def quality(cases: list[dict], extract: Extractor) -> dict[str, tuple[int, int, int]]:
    """kind -> (expected numbers found, expected numbers, numbers found that are not expected)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for case in cases:
        found = set(extract(case["text"], case["region"]))
        expected = set(case["expected"])
        row = counts[case["kind"]]
        row[0] += len(found & expected)
        row[1] += len(expected)
        row[2] += len(found - expected)
    return {kind: (a, b, c) for kind, (a, b, c) in counts.items()}


def _recall(hit: int, total: int) -> str:
    return f"{hit / total:6.3f}" if total else "     -"


def print_quality(cases: list[dict]) -> None:
    ours = quality(cases, phones.extract_phones)
    base = quality(cases, matcher_phones)
    print(
        f"{'kind':<16}{'cases':>6}{'numbers':>8}  {'recall ours':>11}{'matcher':>9}"
        f"  {'false ours':>10}{'matcher':>9}"
    )
    cases_per_kind: dict[str, int] = defaultdict(int)
    for case in cases:
        cases_per_kind[case["kind"]] += 1
    for kind in sorted(ours, key=lambda k: (ours[k][1] == 0, k)):
        (oh, ot, of), (bh, _, bf) = ours[kind], base[kind]
        print(
            f"{kind:<16}{cases_per_kind[kind]:>6}{ot:>8}  {_recall(oh, ot):>11}"
            f"{_recall(bh, ot):>9}  {of:>10}{bf:>9}"
        )
    totals = [sum(col) for col in zip(*ours.values(), strict=True)]
    base_totals = [sum(col) for col in zip(*base.values(), strict=True)]
    print(
        f"{'ALL':<16}{len(cases):>6}{totals[1]:>8}  {_recall(totals[0], totals[1]):>11}"
        f"{_recall(base_totals[0], totals[1]):>9}  {totals[2]:>10}{base_totals[2]:>9}"
    )


def texts_per_second(
    texts: list[tuple[str, str]],
    systems: dict[str, tuple[Extractor, Callable[[], None]]],
    rounds: int,
) -> dict[str, float]:
    """Best texts/s of each system; rounds interleave the systems so load hits all alike."""
    best = dict.fromkeys(systems, float("inf"))
    for _ in range(rounds):
        for name, (extract, before) in systems.items():
            before()
            start = time.perf_counter()
            for text, region in texts:
                extract(text, region)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(texts) / seconds for name, seconds in best.items()}


def print_speed(label: str, texts: list[tuple[str, str]], rounds: int) -> None:
    clear = phones._validate.cache_clear
    speed = texts_per_second(
        texts,
        {
            "matcher": (matcher_phones, lambda: None),
            "cold": (ours_cold, clear),
            "crawl": (phones.extract_phones, clear),
        },
        rounds,
    )
    base = speed["matcher"]
    mean_len = sum(len(t) for t, _ in texts) / len(texts)
    print(f"\n{label}: {len(texts)} texts, mean {mean_len:.0f} characters, best of {rounds}")
    print(f"  PhoneNumberMatcher      {base:10.0f} texts/s")
    for name in ("cold", "crawl"):
        ratio = speed[name] / base
        print(f"  extract_phones ({name:<5})  {speed[name]:10.0f} texts/s   ratio {ratio:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--repeat", type=int, default=20, help="corpus passes per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds; the best counts")
    parser.add_argument(
        "--long", type=int, default=12, help="also time ads of this many corpus texts joined"
    )
    args = parser.parse_args()
    cases = load_corpus(args.corpus)
    print(f"corpus {args.corpus} ({len(cases)} cases)\n")
    print_quality(cases)
    texts = [(case["text"], case["region"]) for case in cases]
    print_speed("corpus texts", texts * args.repeat, args.rounds)
    if args.long > 1:
        joined = [
            ("\n".join(t for t, _ in texts[i : i + args.long]), "NL")
            for i in range(0, len(texts), args.long)
        ]
        print_speed(f"ads of {args.long} corpus texts", joined * args.repeat, args.rounds)


if __name__ == "__main__":
    main()
