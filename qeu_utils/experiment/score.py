"""The score phase: read every finished cell's raw measurements and answers
(``runs/<cell>/raw.json.gz``, ``items.jsonl.gz``), score the answers, compare the conditions
and write ``metrics.json``, ``report.md``, ``scores.jsonl.gz`` (every per-item score) and the
plots. Needs no GPU and no model: it reruns from the committed files alone."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from qeu_utils.core.atomic import atomic_write_json, atomic_write_text
from qeu_utils.experiment.layout import (
    ITEMS,
    RAW,
    _read_lines,
    _write_lines,
    cell_name,
    read_json_gz,
)
from qeu_utils.experiment.metrics import (
    COMPARISONS,
    METRICS,
    MIN_K_SHARE,
    PRIMARY,
    per_item,
    score_answers,
    strata_of,
)
from qeu_utils.experiment.plots import plot
from qeu_utils.experiment.report import report
from qeu_utils.experiment.settings import TRAINED
from qeu_utils.experiment.stats import (
    METHOD,
    group_contrast,
    holm,
    not_estimable,
    paired_bootstrap,
    power_statement,
    verdict,
)

log = logging.getLogger(__name__)
STRATA = ("K", "both", "J", "neither", "outside")


def choose_layers(base: dict) -> dict:
    """Layers are chosen on the base model, never on a trained one (no selection in favour of
    a condition): the kanji layer where the base aligns unseen kanji best, the middle layer for
    the style link, the last layer for the logit lens."""
    kanji = base.get("kanji_unseen") or base.get("kanji_seen")
    n_layers = len(kanji["gap"]) if kanji else len(base["style"]["plain_zh_gap"])
    best = max(range(n_layers), key=lambda k: sum(kanji["gap"][k])) if kanji else n_layers - 1
    return {"kanji": best, "style": n_layers // 2, "lens": n_layers - 1}


class Cells:
    """The per-item values of every cell, and the paired comparisons between conditions."""

    def __init__(self, per: dict, seeds: list[int]):
        self.per, self.seeds = per, seeds

    def matrix(self, condition: str, metric: str, columns=None) -> np.ndarray | None:
        keys = [("base", None)] if condition == "base" else [(condition, s) for s in self.seeds]
        if any(metric not in self.per[k] for k in keys):
            return None
        m = np.array([self.per[k][metric][0] for k in keys], dtype=float)
        return m if columns is None else m[:, columns]

    def compare(self, name: str, metric: str, columns=None) -> dict | None:
        first, second = name.split("-", 1)
        a, b = self.matrix(first, metric, columns), self.matrix(second, metric, columns)
        if a is None or b is None or a.shape[1] != b.shape[1] or a.shape[1] == 0:
            return None
        weights = np.asarray(self.per[(first, self.seeds[0])][metric][1], float)
        row = paired_bootstrap(a, b, weights if columns is None else weights[columns])
        better, bounds = METRICS.get(metric.split("/")[0], ("higher", None))[:2]
        row.update(metric=metric, comparison=name, better=better,
                   not_estimable=not_estimable([a, b], bounds))
        row["verdict"] = verdict(row, better)
        return row

    def means(self, metric: str, conditions) -> dict:
        return {c: [float(np.average(self.per[k][metric][0], weights=self.per[k][metric][1]))
                    for k in ([("base", None)] if c == "base" else
                              [(c, s) for s in self.seeds])]
                for c in conditions if self.matrix(c, metric) is not None}


def primary_endpoints(cells: Cells, gate: dict | None, power: dict,
                      planned_seeds: int | None = None) -> dict:
    """Per claim: its primary comparisons, Holm-adjusted, and the claim's verdict. With fewer
    finished seeds than ``planned_seeds`` the verdict is "pending": the pre-registered design
    is judged on all its seeds, never on whichever were finished first."""
    testable = None if gate is None else gate["K_share_ci95"][0] >= MIN_K_SHARE
    pending = planned_seeds is not None and len(cells.seeds) < planned_seeds
    result = {}
    for claim, (what, metric, comparisons, prediction) in PRIMARY.items():
        rows = [r for r in (cells.compare(c, metric) for c in comparisons) if r]
        for row, p in zip(rows, holm([r["p"] for r in rows]), strict=True):
            row["p_holm"] = p
            row["verdict"] = verdict(row, row["better"])
        if testable is False:
            claim_verdict = "not testable on this model"
            reason = (f"the knowledge gate finds too few items known from Chinese only (K share "
                      f"{gate['K_share']:.1%}, 95% CI from {gate['K_share_ci95'][0]:.1%}; "
                      f"needs ≥ {MIN_K_SHARE:.0%})")
        elif pending:
            claim_verdict = f"pending ({len(cells.seeds)} of {planned_seeds} seeds)"
            reason = "an interim look: the design's seeds are not all finished"
        elif len(rows) < len(comparisons) or any(r["not_estimable"] for r in rows):
            claim_verdict = "not testable on this model"
            reason = "the primary endpoint is not estimable (missing, or at its floor/ceiling)"
        elif all(r["verdict"] == "better" for r in rows):
            claim_verdict, reason = "supported", "B beats every control it is compared with"
        else:
            claim_verdict = "not supported"
            reason = "; ".join(f"{r['comparison']}: {r['verdict']}" for r in rows)
        head = rows[0] if rows else {}
        result[claim] = {
            "claim": what, "metric": metric, "prediction": prediction,
            "comparison": head.get("comparison"), "difference": head.get("difference"),
            "ci_lo": head.get("ci_lo"), "ci_hi": head.get("ci_hi"), "method": METHOD,
            "verdict": claim_verdict, "reason": reason, "comparisons": rows,
            "power": power.get(metric)}
    return result


def strata_breakdown(cells: Cells, strata: list[str]) -> dict:
    """The recognition endpoint per gate stratum, and how much larger the effect is in K than
    in the other items (the claim predicts larger)."""
    labels = np.array(strata)
    result = {"counts": {s: int((labels == s).sum()) for s in STRATA}}
    for name in COMPARISONS:
        rows = {}
        for s in STRATA:
            columns = np.flatnonzero(labels == s)
            if len(columns) >= 2:
                rows[s] = cells.compare(name, "margin_changed", columns)
        first, second = name.split("-", 1)
        a, b = cells.matrix(first, "margin_changed"), cells.matrix(second, "margin_changed")
        in_k = labels == "K"
        if a is not None and b is not None and 2 <= in_k.sum() <= len(labels) - 2:
            rows["K_minus_rest"] = group_contrast(a, b, in_k)
        result[name] = rows
    result["means"] = {s: {c: float(np.mean(cells.matrix(c, "margin_changed")[:, labels == s]))
                           for c in ("base", *TRAINED)}
                       for s in STRATA if (labels == s).any()}
    return result


def _power(cells: Cells) -> dict:
    """The effect each primary endpoint's item count detects (80% power, α = 0.05), from the
    per-item spread of B − base (known before any control is compared)."""
    out = {}
    for metric in {m for _, m, _, _ in PRIMARY.values()}:
        b, base = cells.matrix("B", metric), cells.matrix("base", metric)
        if b is None or base is None:
            continue
        d = (b - base).mean(axis=0)
        out[metric] = power_statement(len(d), sd=float(d.std(ddof=1)) if len(d) > 1 else 0.0,
                                      unit=" nats" if "margin" in metric else "")
    b = cells.matrix("base", "exact_changed")
    if b is not None:
        out["exact_changed"] = power_statement(b.shape[1], p0=max(float(b.mean()), 0.01))
    return out


def score(out_dir: str | Path, *, command: str | None = None) -> dict:
    """Score every finished cell; write ``metrics.json``, ``report.md``, ``scores.jsonl.gz``
    and the plots."""
    out = Path(out_dir)
    data_dir = out / "data"
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    settings = manifest["settings"]
    probes = _read_lines(data_dir / "probes.jsonl.gz")
    found = {}
    for path in sorted((out / "runs").glob(f"*/{RAW}")):
        raw = read_json_gz(path)
        items = _read_lines(path.parent / ITEMS)
        score_answers(items, probes)
        found[(raw["condition"], raw["seed"])] = (raw, items)
    if ("base", None) not in found:
        raise FileNotFoundError(f"{out}/runs/base/{RAW} is missing: run the run phase first")
    seeds = [s for s in settings["seeds"] if all((c, s) in found for c in TRAINED)]
    if not seeds:
        raise FileNotFoundError(f"{out}/runs: no seed has {', '.join(TRAINED)} finished yet")
    keys = [("base", None)] + [(c, s) for c in TRAINED for s in seeds]
    base_raw, base_items = found[("base", None)]
    layers = choose_layers(base_raw)
    cells = Cells({k: per_item(*found[k], layers) for k in keys}, seeds)
    metrics = list(cells.per[("base", None)])
    power = _power(cells)
    rows = {name: [r for r in (cells.compare(name, m) for m in metrics) if r]
            for name in COMPARISONS}
    trained = [k for k in keys if k[0] != "base"]
    result = {
        "model": settings["model"], "profile": settings["profile"], "seeds": seeds,
        "stage1_epochs": settings["stage1_epochs"], "measured_after": "stage 1",
        "conditions": {c: {m: v for m in metrics for v in [cells.means(m, [c]).get(c)] if v}
                       for c in ("base", *TRAINED)},
        "seeds_planned": settings["seeds"],
        "primary": primary_endpoints(cells, manifest.get("gate"), power,
                                     planned_seeds=len(settings["seeds"])),
        "secondary": {n: [r for r in rs if "/" not in r["metric"]] for n, rs in rows.items()},
        "exploratory": {n: [r for r in rs if "/" in r["metric"]] for n, rs in rows.items()},
        "strata": strata_breakdown(cells, strata_of(base_items)),
        "stage1": {
            "final_loss": {c: [_final_loss(found[(c, s)][0]) for s in seeds] for c in TRAINED},
            "steps": {c: [found[(c, s)][0]["training"].get("stage1", {}).get("global_step")
                          for s in seeds] for c in TRAINED},
            "tokens_per_epoch": {c: found[(c, seeds[0])][0].get("stage1_tokens")
                                 for c in TRAINED}},
        "foil_top1_by_layer": _foil_curves(found, keys),
        "durability": _durability(out, found, seeds, layers) if any(
            "after_stage2" in found[k][0] for k in trained) else None,
        "power": power, "layers": layers, "gate": manifest.get("gate"),
        "min_k_share": MIN_K_SHARE, "settings": settings, "probes": manifest["probes"],
        "probes_changed": manifest["probes_changed"],
        "probes_generated": manifest["probes_generated"],
        "probes_in_gate": manifest["probes_in_gate"], "items": manifest["items"],
        "controls": manifest["controls"],
        "metric_definitions": {m: {"better": v[0], "bounds": v[1], "what": v[2]}
                               for m, v in METRICS.items()},
        "wall_time_s": {cell_name(*k): found[k][0]["timing"] for k in keys},
        "cost": _cost(out, found, keys),
        "environment": base_raw["environment"],
        "commands": {"prepare": _relative(manifest.get("command"), out),
                     "run": sorted({_relative(found[k][0]["command"], out) for k in keys
                                    if found[k][0].get("command")}),
                     "score": command},
        "training": {cell_name(*k): found[k][0]["training"] for k in trained},
    }
    _write_lines(out / "scores.jsonl.gz", [{"cell": cell_name(*k), **row} for k in keys
                                           for row in found[k][1]])
    atomic_write_json(out / "metrics.json", result)
    atomic_write_text(out / "report.md", report(result))
    plot(result, out)
    log.info(f"score: {len(seeds)} seed(s) → {out / 'metrics.json'}, {out / 'report.md'}")
    return result


def _relative(command: str | None, out: Path) -> str | None:
    # A run started elsewhere with an absolute --out names this folder by where it sat on
    # that machine; the report says it as the score phase was given it.
    if command is None or out.is_absolute():
        return command
    return command.replace(str(out.resolve()), str(out))


def _final_loss(raw: dict) -> float | None:
    """Stage 1's last logged training loss (its mean over the run when none was logged)."""
    stage1 = raw["training"].get("stage1", {})
    return stage1["loss"][-1][1] if stage1.get("loss") else stage1.get("train_loss")


def _foil_curves(found: dict, keys: list) -> dict:
    """Retrieval@1 against orthographic foils at every layer (unseen kanji), per condition:
    the mean over items, then over seeds."""
    curves: dict = {}
    for condition, _ in keys:
        rows = [found[k][0]["kanji_unseen"]["foil_top1"] for k in keys
                if k[0] == condition and found[k][0].get("kanji_unseen")]
        if rows and condition not in curves:
            per_seed = [[float(np.mean([x for x in layer if x is not None] or [np.nan]))
                         for layer in r] for r in rows]
            curves[condition] = [float(x) for x in np.nanmean(np.array(per_seed), axis=0)]
    return curves


def _durability(out: Path, found: dict, seeds: list[int], layers: dict) -> dict:
    """The primary endpoints measured again after stage 2 (B against each control)."""
    per = {(c, s): per_item(found[(c, s)][0]["after_stage2"],
                            _read_lines(out / "runs" / cell_name(c, s) / "items_stage2.jsonl.gz"),
                            layers) for c in TRAINED for s in seeds}
    cells = Cells(per, seeds)
    return {name: [r for r in (cells.compare(name, m) for m in
                               ("margin_changed", "rule_margin", "dolly_loss")) if r]
            for name in ("B-C-changed", "B-C-swap")}


def _cost(out: Path, found: dict, keys: list) -> dict:
    """The first cost estimate printed before the run, against the measured wall time."""
    estimates = sorted((out / "runs").glob("estimate-*.json"))
    first = json.loads(estimates[0].read_text(encoding="utf-8")) if estimates else None
    measured = sum(found[k][0]["timing"].get("total_s", 0) for k in keys) / 60
    per_cell = [found[k][0]["timing"].get("measure_s") for k in keys]
    return {"estimate": first, "measured_minutes": round(measured, 1),
            "measure_minutes_per_cell": round(float(np.mean(per_cell)) / 60, 2)}
