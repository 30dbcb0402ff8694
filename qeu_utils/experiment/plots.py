"""The score phase's figures: each metric per condition, the paired differences with their
intervals, and the training-loss curves of both stages."""

from __future__ import annotations

import math
from pathlib import Path

from qeu_utils.core.plotting import pyplot, save_png
from qeu_utils.experiment.metrics import METRICS
from qeu_utils.experiment.stats import _mean


def plot(result: dict, out: Path) -> None:
    """``metrics_by_condition.png`` (each metric: base line, per-condition mean and seeds),
    ``differences.png`` (B − A and B − C with their intervals) and ``stage1_curves.png``."""
    plt = pyplot()
    metrics = [m for m in METRICS if m in result["base"]]
    cols = 4
    nrows = math.ceil(len(metrics) / cols)
    conditions = list(result["conditions"])
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.5 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        ax.axhline(result["base"][metric], color="gray", linestyle="--", linewidth=0.8,
                   label="base")
        for k, c in enumerate(conditions):
            values = result["conditions"][c].get(metric, [])
            if values:
                ax.scatter([k] * len(values), values, s=10, color=f"C{k}", alpha=0.6)
                ax.scatter([k], [_mean(values)], s=60, marker="_", color=f"C{k}")
        ax.set_xticks(range(len(conditions)), conditions)
        ax.set_title(metric, fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(f"{result['model']}: per condition (dots: seeds; dashes: mean; gray: base)")
    fig.tight_layout()
    save_png(fig, out / "metrics_by_condition.png", dpi=100)
    plt.close(fig)

    comps = result["comparisons"]
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.3 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for k, comp in enumerate(comps.values()):
            row = next((r for r in comp if r["metric"] == metric), None)
            if row is None:
                continue
            ax.errorbar([k], [row["difference"]],
                        yerr=[[row["difference"] - row["ci_lo"]],
                              [row["ci_hi"] - row["difference"]]],
                        fmt="o", color=f"C{k}", capsize=3)
        ax.axhline(0, color="gray", linewidth=0.8)
        ax.set_xticks(range(len(comps)), list(comps))
        better = METRICS[metric][0]
        ax.set_title(f"{metric} ({better} is better)", fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle("Paired differences with 95% intervals")
    fig.tight_layout()
    save_png(fig, out / "differences.png", dpi=100)
    plt.close(fig)

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for cell, stages in result["training"].items():
        condition = cell.split("-")[0]
        color = f"C{conditions.index(condition)}" if condition in conditions else "gray"
        for ax, stage in ((left, "stage1"), (right, "stage2")):
            curve = stages.get(stage, {}).get("loss") or []
            if curve:
                ax.plot([p[0] for p in curve], [p[1] for p in curve], color=color, alpha=0.7,
                        label=cell)
    left.set(title="stage 1 (B: links, C: link-broken)", xlabel="step", ylabel="training loss")
    right.set(title="stage 2 (Dolly)", xlabel="step", ylabel="training loss")
    for ax in (left, right):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, out / "stage1_curves.png", dpi=100)
    plt.close(fig)
