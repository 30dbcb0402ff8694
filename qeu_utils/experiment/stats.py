"""The statistics of the comparisons: weighted means, the t-interval over seeds, the paired
item bootstrap, and :func:`compare`, which turns per-item values into a difference, a 95%
interval and a verdict."""

from __future__ import annotations

import math

from qeu_utils.experiment.metrics import METRICS


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _weighted_mean(values, weights) -> float:
    return sum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights)


def t_interval(diffs: list[float]) -> tuple[float, float] | None:
    """95% Student-t interval of the mean of ``diffs`` (exact quantile, any degrees of
    freedom); None with fewer than 2 values."""
    from scipy.stats import t

    n = len(diffs)
    if n < 2:
        return None
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def paired_bootstrap(diff_by_seed: list[list[float]], weights: list[float], *,
                     n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of a weighted mean of per-item differences (each item's
    difference averaged over seeds), resampling items: the same items were asked of both
    models, so the item-to-item spread is what the interval must cover."""
    import numpy as np

    d = np.asarray(diff_by_seed, dtype=float).mean(axis=0)
    w = np.asarray(weights, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    stats = (d[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1)
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def compare(per_item: dict, first: str, second: str, seeds: list[int]) -> list[dict]:
    """``first − second`` per metric: the mean over seeds of the paired difference, the
    t-interval over seeds (≥ 2 seeds), the paired item bootstrap, and as ``ci_lo``/``ci_hi``
    the wider of the two (both sources of chance must agree before a verdict)."""
    rows = []
    metrics = per_item[(first, seeds[0])]
    for metric in metrics:
        if any(metric not in per_item[(c, s)] for c in (first, second) for s in seeds):
            continue
        weights = per_item[(first, seeds[0])][metric][1]
        by_seed, seed_diffs = [], []
        for s in seeds:
            a, b = per_item[(first, s)][metric][0], per_item[(second, s)][metric][0]
            by_seed.append([x - y for x, y in zip(a, b, strict=True)])
            seed_diffs.append(_weighted_mean(a, weights) - _weighted_mean(b, weights))
        difference = sum(seed_diffs) / len(seed_diffs)
        t_ci = t_interval(seed_diffs)
        boot = paired_bootstrap(by_seed, weights)
        lo = min(boot[0], t_ci[0]) if t_ci else boot[0]
        hi = max(boot[1], t_ci[1]) if t_ci else boot[1]
        better = METRICS.get(metric, ("higher",))[0]
        if lo <= 0 <= hi:
            verdict = "no clear difference"
        elif (difference > 0) == (better == "higher"):
            verdict = f"{first} better"
        else:
            verdict = f"{first} worse"
        rows.append({"metric": metric, "difference": difference, "ci_lo": lo, "ci_hi": hi,
                     "verdict": verdict, "t_ci": list(t_ci) if t_ci else None,
                     "bootstrap_ci": list(boot), "n_items": len(weights),
                     "n_seeds": len(seeds), "better": better})
    return rows
