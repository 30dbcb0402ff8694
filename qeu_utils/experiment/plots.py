"""The score phase's figures: the paired differences with their intervals (primary endpoints
first), the stage-1 loss curves of every condition, and retrieval against orthographic foils
at every layer."""

from __future__ import annotations

import math
from pathlib import Path

from qeu_utils.core.plotting import pyplot, save_png


def plot(result: dict, out: Path) -> None:
    """``differences.png``, ``stage1_curves.png`` and ``foil_retrieval.png``."""
    plt = pyplot()
    primary = [e["metric"] for e in result["primary"].values()]
    rows = {}
    for comparison in result["secondary"].values():
        for r in comparison:
            rows.setdefault(r["metric"], []).append(r)
    for entry in result["primary"].values():  # the Holm-adjusted rows of the primary ones
        for r in entry["comparisons"]:
            rows[r["metric"]] = [r] + [x for x in rows.get(r["metric"], [])
                                       if x["comparison"] != r["comparison"]]
    metrics = primary + [m for m in rows if m not in primary]
    cols = 4
    nrows = math.ceil(len(metrics) / cols)
    names = ["B-C-changed", "B-C-swap", "B-base"]
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.4 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for k, name in enumerate(names):
            r = next((x for x in rows.get(metric, []) if x["comparison"] == name), None)
            if r is None:
                continue
            ax.errorbar([k], [r["difference"]], yerr=[[r["difference"] - r["ci_lo"]],
                                                      [r["ci_hi"] - r["difference"]]],
                        fmt="o", color=f"C{k}", capsize=3)
        ax.axhline(0, color="gray", linewidth=0.8)
        ax.set_xticks(range(len(names)), ["−C-chg", "−C-swap", "−base"], fontsize=7)
        better = rows[metric][0]["better"] if rows.get(metric) else "higher"
        ax.set_title(f"{'★ ' if metric in primary else ''}{metric} ({better} better)",
                     fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(f"{result['model']}: B minus each condition, 95% intervals (★ primary)")
    fig.tight_layout()
    save_png(fig, out / "differences.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    colors = {"B": "C0", "C-changed": "C1", "C-swap": "C2"}
    for cell, stages in result["training"].items():
        condition = cell.rsplit("-s", 1)[0]
        curve = stages.get("stage1", {}).get("loss") or []
        if curve:
            ax.plot([p[0] for p in curve], [p[1] for p in curve], alpha=0.7,
                    color=colors.get(condition, "gray"),
                    label=condition if cell.endswith("-s" + str(result["seeds"][0])) else None)
    ax.set(title="stage 1 training loss", xlabel="step", ylabel="loss")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, out / "stage1_curves.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for k, (condition, curve) in enumerate(result["foil_top1_by_layer"].items()):
        ax.plot(range(len(curve)), curve, marker=".", color=f"C{k}", label=condition)
    ax.set(title="unseen kanji: ja → 簡 retrieval@1 against orthographic foils",
           xlabel="layer (0 = embeddings)", ylabel="retrieval@1")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, out / "foil_retrieval.png", dpi=100)
    plt.close(fig)
