"""Benchmark: claim extraction time against report length (10 KB, 100 KB, 1 MB by default).

Builds English reports of the requested sizes from varied defence-news sentences (counts, types,
dates, places, named officials, quoted passages change from paragraph to paragraph), then times
:func:`sitewatch.assess.claims.extract_claims` on each (vocabulary built once, outside the timing).
Prints characters, sentences, claims, seconds and microseconds per character: extraction is
linear when the last column stays flat as the size grows.

Usage: python bench/claims_scaling.py [--sizes 10000 100000 1000000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from types import SimpleNamespace

from sitewatch.assess.claims import extract_claims
from sitewatch.assess.vocabulary import build_vocabulary

SITES = [SimpleNamespace(name="hmeimim", title="Hmeimim Air Base", aliases=["Khmeimim"]),
         SimpleNamespace(name="tartus", title="Tartus naval base", aliases=["Tartous"])]  # fmt: skip
TYPES = ["Su-24", "Il-76", "Ka-52", "An-124", "Su-34", "Mi-8", "Pantsir-S1", "Tu-22M3"]
PLACES = ["Hmeimim", "Tartus", "Khmeimim", "the base"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Dec. 12", "last week"]
PARAGRAPH = (
    "About {n} {t} aircraft left {p} on {d}, a US official said. "
    "Satellite images from Maxar show at least {m} trucks near {p}. "
    "Kremlin spokesman Dmitry Peskov downplayed the reports. He said the {t} fleet would remain at {p}. "
    '"Only {k} vehicles are still at {p}," the monitoring group said. "The rest moved out on {d}."\n'
)


def report(size: int) -> str:
    """An English report of exactly ``size`` characters (paragraphs varied by their index)."""
    parts, total, i = [], 0, 0
    while total < size:
        para = PARAGRAPH.format(n=10 + i % 40, m=3 + i % 17, k=2 + i % 9, t=TYPES[i % len(TYPES)],
                                p=PLACES[i % len(PLACES)], d=DAYS[i % len(DAYS)])  # fmt: skip
        parts.append(para)
        total += len(para)
        i += 1
    return "".join(parts)[:size]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="report sizes, characters"
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per size (the fastest is printed)")
    args = ap.parse_args()
    vocab = build_vocabulary(sites=SITES)
    published = datetime(2024, 12, 21, 9, tzinfo=UTC)
    extract_claims(report(2_000), source="warm-up", published=published, vocabulary=vocab)
    print(f"{'characters':>11} {'sentences':>9} {'claims':>7} {'seconds':>8} {'µs/char':>8}")
    for size in args.sizes:
        text = report(size)
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            claims = extract_claims(text, source="bench", published=published, vocabulary=vocab)
            best = min(best, time.perf_counter() - t0)
        sentences = max(c.sentence for c in claims) + 1 if claims else 0
        print(f"{size:>11,} {sentences:>9,} {len(claims):>7,} {best:>8.2f} {1e6 * best / size:>8.1f}")


if __name__ == "__main__":
    main()
