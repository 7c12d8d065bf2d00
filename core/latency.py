"""Response-time histograms (pure): log-scale buckets, ten per decade from 1 ms to 100 s,
so a minute of any number of requests is ~50 counters and p50/p95/p99 are within one bucket
(~26 %) of the truth. Histograms of different minutes or processes merge by adding."""
from __future__ import annotations

import math

BUCKETS = 51                       # bucket i holds times up to 10 ** (i / 10) ms


def bucket(ms: float) -> int:
    if ms <= 1:
        return 0
    return min(BUCKETS - 1, math.ceil(10 * math.log10(ms) - 1e-9))


def upper_ms(i: int) -> float:
    return round(10 ** (i / 10), 1)


def merge(into: dict[str, int], other: dict[str, int]) -> dict[str, int]:
    for k, n in other.items():
        into[k] = into.get(k, 0) + int(n)
    return into


def percentile(hist: dict[str, int], q: float) -> float | None:
    """The q-quantile (0..1) as its bucket's upper bound in ms; None for no requests."""
    total = sum(hist.values())
    if not total:
        return None
    rank = q * total
    seen = 0
    for i in sorted(hist, key=int):
        seen += hist[i]
        if seen >= rank:
            return upper_ms(int(i))
    return upper_ms(max(int(i) for i in hist))
