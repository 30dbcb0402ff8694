"""Plots of the analysis, each written to a PNG with a font that renders Japanese, Traditional
and Simplified Chinese: :func:`plot_layer_curves`, :func:`plot_projection`,
:func:`plot_similarity_heatmap`, :func:`plot_logit_lens`.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from qeu_utils.analysis.metrics import unit_vectors
from qeu_utils.core.plotting import pyplot, save_png

__all__ = [
    "plot_layer_curves",
    "plot_projection",
    "plot_similarity_heatmap",
    "plot_logit_lens",
]


def _save(plt, fig, path: str | os.PathLike) -> None:
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)


def plot_layer_curves(series: dict[str, list[dict]], key: str, path: str | os.PathLike,
                      title: str, ylabel: str) -> None:
    """``key`` per layer for each labelled run ("base", "stage 1", …), with a shaded CI band
    where the rows carry ``{key}_lo``/``{key}_hi``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for label, rows in series.items():
        layers = [r["layer"] for r in rows]
        line, = ax.plot(layers, [r[key] for r in rows], marker="o", markersize=3, label=label)
        if rows and f"{key}_lo" in rows[0]:
            ax.fill_between(layers, [r[f"{key}_lo"] for r in rows],
                            [r[f"{key}_hi"] for r in rows], color=line.get_color(), alpha=0.2)
    ax.axhline(0, color="gray", linewidth=0.6)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    _save(plt, fig, path)


def plot_projection(states_by_form: dict, labels, path: str | os.PathLike, title: str) -> None:
    """All forms' vectors (``{form: [n, H]}``, e.g. 日本/繁体/簡体) projected together onto
    their first two principal components; one colour per form, each point annotated, and a
    faint line joining the forms of one item.

    ``labels``: a list of ``n`` strings shared by every form, or ``{form: [n strings]}`` so each
    point shows its own character (鉄, 鐵, 铁)."""
    plt = pyplot()
    forms = list(states_by_form)
    arrays = [np.asarray(torch.as_tensor(states_by_form[f], dtype=torch.float32))
              for f in forms]
    n = arrays[0].shape[0]
    stacked = np.concatenate(arrays)
    centered = stacked - stacked.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    xy = (centered @ vt[:2].T).reshape(len(forms), n, 2)
    fig, ax = plt.subplots(figsize=(7, 6))
    for i in range(n):
        ax.plot(xy[:, i, 0], xy[:, i, 1], color="gray", linewidth=0.4, alpha=0.4)
    for k, form in enumerate(forms):
        texts = labels[form] if isinstance(labels, dict) else labels
        ax.scatter(xy[k, :, 0], xy[k, :, 1], s=14, label=form, color=f"C{k}")
        for i in range(n):
            ax.annotate(texts[i], xy[k, i], fontsize=8, color=f"C{k}",
                        xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    ax.legend()
    _save(plt, fig, path)


def plot_similarity_heatmap(a, b, labels: list[str], path: str | os.PathLike, title: str, *,
                            col_labels: list[str] | None = None, center=None) -> None:
    """Cosine similarity of every row of ``a`` ([n, H]) with every row of ``b``, at most 20
    rows, ticks labelled with the characters (``col_labels`` for ``b`` when they differ).
    ``center`` ([H]), when given, is subtracted first: the metrics' centering (the layer's mean
    over all items), without which every cosine sits near 1."""
    plt = pyplot()
    if center is not None:
        a, b = a - center, b - center
    a, b = unit_vectors(a)[0], unit_vectors(b)[0]
    if a.shape[0] > 20 or b.shape[0] > 20:
        raise ValueError(f"a heatmap is readable for at most 20 rows, got {a.shape[0]} and "
                         f"{b.shape[0]}: pass a subset")
    sim = (a @ b.T).numpy()
    fig, ax = plt.subplots(figsize=(1.2 + 0.38 * len(sim[0]), 1.0 + 0.38 * len(sim)))
    image = ax.imshow(sim, cmap="viridis")
    ax.set_xticks(range(sim.shape[1]), col_labels or labels)
    ax.set_yticks(range(sim.shape[0]), labels)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="cosine" if center is None else "cosine (centred)")
    _save(plt, fig, path)


def plot_logit_lens(results: dict[str, dict], path: str | os.PathLike, title: str) -> None:
    """:func:`logit_lens` results per label: the answer's probability and the probability mass
    on English / Chinese / Japanese tokens, per layer (one line style per label)."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    styles = ["-", "--", ":", "-."]
    colors = {"mass_en": "C0", "mass_zh": "C3", "mass_ja": "C2"}
    for k, (label, result) in enumerate(results.items()):
        layers = range(result["layers"])
        style = styles[k % len(styles)]
        left.plot(layers, result["answer_prob"], style, marker="o", markersize=3, label=label)
        for key, color in colors.items():
            right.plot(layers, result[key], style, color=color,
                       label=f"{key.removeprefix('mass_')} ({label})")
    left.set(xlabel="layer", ylabel="p(answer's first token)", title="answer")
    right.set(xlabel="layer", ylabel="probability mass", title="language of the next token")
    left.legend()
    right.legend(fontsize=8)
    fig.suptitle(title)
    _save(plt, fig, path)
