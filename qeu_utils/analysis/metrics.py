"""Per-layer metrics: does the curriculum pull Japanese and Chinese (and English) together?

- :func:`alignment`: matched vs. random cosine, the gap with a bootstrap 95% CI, retrieval
  top-1/top-10/MRR; :func:`style_linkage`: is plain Japanese closer to Chinese, polite
  Japanese closer to English? Raw cosines by default; ``center=True`` removes the common
  direction all hidden states share first.
- Per item rather than averaged (for paired statistics over items): :func:`alignment_items`,
  :func:`style_linkage_items`.

Inputs are hidden states ``[layers, n, hidden]`` (see ``hidden_states``); a 2-D input is one
layer.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "alignment",
    "alignment_items",
    "foil_retrieval",
    "style_linkage",
    "style_linkage_items",
    "unit_vectors",
]


def _layers(x) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float32)
    return x.unsqueeze(0) if x.dim() == 2 else x  # a 2-D input is one layer


def unit_vectors(x) -> torch.Tensor:
    """Each row scaled to length 1, per layer (``[layers, n, hidden]``, float32)."""
    return torch.nn.functional.normalize(_layers(x), dim=-1)


def _units(*xs, center: bool) -> list[torch.Tensor]:
    """Unit vectors of each input; with ``center``, after subtracting (per layer) the mean of
    all rows of all inputs. Hidden states share a large common direction (anisotropy) that
    puts every cosine near 1; centering removes it, so the cosines spread out."""
    xs = [_layers(x) for x in xs]
    if center:
        mean = torch.cat(xs, dim=1).mean(dim=1, keepdim=True)
        xs = [x - mean for x in xs]
    return [torch.nn.functional.normalize(x, dim=-1) for x in xs]


def _ci(values: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap 95% CI of the mean over items (axis 1), per layer (axis 0)."""
    rng = np.random.default_rng(seed)
    n = values.shape[1]
    idx = rng.integers(0, n, size=(n_boot, n))
    means = values[:, idx].mean(axis=2)  # [layers, n_boot]
    return np.percentile(means, 2.5, axis=1), np.percentile(means, 97.5, axis=1)


def alignment(a, b, *, n_boot: int = 1000, seed: int = 0, center: bool = False) -> list[dict]:
    """Per layer, how well row ``i`` of ``a`` matches row ``i`` of ``b`` (``[layers, n, H]``).

    - ``matched``: mean cosine of the matched pairs; ``random``: mean cosine of all pairs
      ``i != j``; ``gap`` = matched − random, with ``gap_lo``/``gap_hi`` a bootstrap 95% CI over
      items (each item's own gap is its matched cosine minus the mean of its row's others, whose
      average is exactly ``random``).
    - Retrieval of ``b[i]`` among all rows of ``b`` by cosine to ``a[i]``: ``top1``, ``top10``
      and ``mrr`` (ties count in the item's favour).

    ``center=True`` measures cosines after removing the mean of all rows of ``a`` and ``b``
    (per layer), which spreads out the crowded raw cosines of anisotropic hidden states.
    """
    items = alignment_items(a, b, center=center)
    gap, rank, matched, others = items["gap"], items["rank"], items["matched"], items["others"]
    n = gap.shape[1]
    lo, hi = _ci(gap, n_boot, seed)
    rows = []
    for layer in range(gap.shape[0]):
        rows.append({
            "layer": layer, "n": n, "matched": float(matched[layer].mean()),
            "random": float(others[layer].mean()), "gap": float(gap[layer].mean()),
            "gap_lo": float(lo[layer]), "gap_hi": float(hi[layer]),
            "top1": float((rank[layer] == 1).mean()),
            "top10": float((rank[layer] <= 10).mean()),
            "mrr": float((1.0 / rank[layer]).mean()),
        })
    return rows


def alignment_items(a, b, *, center: bool = False) -> dict[str, np.ndarray]:
    """:func:`alignment` per item, ``[layers, n]`` arrays: ``matched`` (cosine of ``a[i]`` and
    ``b[i]``), ``others`` (mean cosine of ``a[i]`` with every other row of ``b``), ``gap`` (their
    difference) and ``rank`` (1 = ``b[i]`` is the nearest row of ``b`` to ``a[i]``; ties count
    in the item's favour). Per-item values are what a paired comparison of two models needs."""
    if _layers(a).shape != _layers(b).shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(_layers(a).shape)} and "
                         f"{tuple(_layers(b).shape)}")
    a, b = _units(a, b, center=center)
    n = a.shape[1]
    if n < 2:
        raise ValueError(f"alignment needs at least 2 items to compare against, got {n}")
    sim = torch.einsum("lih,ljh->lij", a, b).double().numpy()  # [L, n, n]
    diag = np.diagonal(sim, axis1=1, axis2=2)  # [L, n]
    others = (sim.sum(axis=2) - diag) / (n - 1)  # each row's mean non-matching cosine
    rank = 1 + (sim > diag[:, :, None]).sum(axis=2)
    return {"matched": diag.copy(), "others": others, "gap": diag - others, "rank": rank}


def foil_retrieval(a, b, foils: list[list[int]], *, center: bool = False) -> np.ndarray:
    """Retrieval@1 against orthographic foils, ``[layers, n]``: 1 where ``b[i]`` is nearer to
    ``a[i]`` than every ``b[j]`` with ``j`` in ``foils[i]`` (forms that share bytes or a token
    with ``b[i]``, which alone move cosines), else 0; NaN where ``foils[i]`` is empty. Ties
    count in the item's favour, as in :func:`alignment_items`."""
    a, b = _units(a, b, center=center)
    sim = torch.einsum("lih,ljh->lij", a, b).double().numpy()  # [L, n, n]
    out = np.full(sim.shape[:2], np.nan)
    for i, js in enumerate(foils):
        if js:
            out[:, i] = (sim[:, i, i] >= sim[:, i, js].max(axis=1)).astype(float)
    return out


def style_linkage(plain, polite, zh, en, *, n_boot: int = 1000, seed: int = 0,
                  center: bool = False) -> list[dict]:
    """Per layer, the curriculum's link: plain Japanese ⇄ Chinese, polite Japanese ⇄ English.

    ``plain_zh_gap`` is the mean over sentences of cos(plain, zh) − cos(polite, zh);
    ``polite_en_gap`` the mean of cos(polite, en) − cos(plain, en); both with bootstrap 95% CIs
    (``_lo``, ``_hi``). Positive means the link holds. The four mean cosines come along.
    ``center`` as in :func:`alignment` (the mean of all four inputs' rows).
    """
    items = style_linkage_items(plain, polite, zh, en, center=center)
    gaps = {key: items[key] for key in ("plain_zh_gap", "polite_en_gap")}
    cis = {key: _ci(values, n_boot, seed) for key, values in gaps.items()}
    rows = []
    for layer in range(gaps["plain_zh_gap"].shape[0]):
        row = {"layer": layer, "n": gaps["plain_zh_gap"].shape[1]}
        for key, values in gaps.items():
            row[key] = float(values[layer].mean())
            row[f"{key}_lo"] = float(cis[key][0][layer])
            row[f"{key}_hi"] = float(cis[key][1][layer])
        row.update({f"cos_{k}": float(items[f"cos_{k}"][layer].mean())
                    for k in ("plain_zh", "polite_zh", "polite_en", "plain_en")})
        rows.append(row)
    return rows


def style_linkage_items(plain, polite, zh, en, *, center: bool = False) -> dict[str, np.ndarray]:
    """:func:`style_linkage` per sentence: ``[layers, n]`` arrays ``plain_zh_gap``,
    ``polite_en_gap`` and the four cosines ``cos_plain_zh`` … ``cos_plain_en``."""
    shapes = {tuple(_layers(x).shape) for x in (plain, polite, zh, en)}
    if len(shapes) != 1:
        raise ValueError(f"plain, polite, zh and en must have the same shape, got {shapes}")
    plain, polite, zh, en = _units(plain, polite, zh, en, center=center)

    def cos(x, y):
        return (x * y).sum(-1).double().numpy()  # [L, n]

    pairs = {"plain_zh": cos(plain, zh), "polite_zh": cos(polite, zh),
             "polite_en": cos(polite, en), "plain_en": cos(plain, en)}
    result = {f"cos_{k}": v for k, v in pairs.items()}
    result["plain_zh_gap"] = pairs["plain_zh"] - pairs["polite_zh"]
    result["polite_en_gap"] = pairs["polite_en"] - pairs["plain_en"]
    return result
