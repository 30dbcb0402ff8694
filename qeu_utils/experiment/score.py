"""The score phase: read every finished cell's ``raw.json``, score it, compare the conditions
and write ``metrics.json``, ``report.md`` and the plots. Needs neither a GPU nor the text
tools."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from qeu_utils.core.atomic import atomic_write_json, atomic_write_text
from qeu_utils.experiment.layout import _read_lines, cell_name
from qeu_utils.experiment.metrics import METRICS, _per_item, answers_correctly
from qeu_utils.experiment.plots import plot
from qeu_utils.experiment.report import report
from qeu_utils.experiment.stats import _weighted_mean, compare

log = logging.getLogger(__name__)


def _choose_layers(base: dict) -> dict:
    """Layers are chosen on the base model, never on a trained one (no selection in favour of
    a condition): the kanji layer where the base aligns unseen kanji best, the middle layer for
    the style link (as ``analyze``), the last layer for the logit lens."""
    kanji = base.get("kanji_unseen") or base.get("kanji_seen")
    n_layers = len(kanji["gap"]) if kanji else len(base["style"]["plain_zh_gap"])
    best = max(range(n_layers), key=lambda k: sum(kanji["gap"][k])) if kanji else n_layers - 1
    return {"kanji": best, "style": n_layers // 2, "lens": n_layers - 1}


def score(out_dir: str | Path, *, command: str | None = None) -> dict:
    """Score every finished cell; write ``metrics.json``, ``report.md`` and the plots."""
    out = Path(out_dir)
    data_dir = out / "data"
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    settings = manifest["settings"]
    raws = {}
    for path in sorted((out / "runs").glob("*/raw.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        raws[(raw["condition"], raw["seed"])] = raw
    if ("base", None) not in raws:
        raise FileNotFoundError(f"{out}/runs/base/raw.json is missing: run the run phase first")
    conditions = [c for c in settings["conditions"] if any(k[0] == c for k in raws)]
    seeds = [s for s in settings["seeds"] if all((c, s) in raws for c in ("A", "B", "C"))]
    if not seeds:
        raise FileNotFoundError(f"{out}/runs: no seed has A, B and C finished yet")
    conditions = [c for c in conditions if all((c, s) in raws for s in seeds)]
    base = raws[("base", None)]
    accepted = json.loads((data_dir / "forgetting_answers.json").read_text(encoding="utf-8"))
    data = {
        "probes": _read_lines(data_dir / "probes.jsonl"),
        "forgetting_answers": accepted,
        "forgetting_keep": [i for i, a in enumerate(base["forgetting_answers"])
                            if answers_correctly(a, accepted[i])],
    }
    layers = _choose_layers(base)
    cells = [("base", None)] + [(c, s) for c in conditions for s in seeds]
    per_item = {key: _per_item(raws[key], data, layers) for key in cells}
    metrics = list(per_item[("base", None)])
    result = {
        "model": settings["model"], "profile": settings["profile"], "seeds": seeds,
        "stage1_epochs": settings["stage1_epochs"], "stage2_steps": settings["stage2_steps"],
        "settings": settings, "probes": manifest["probes"], "items": manifest["items"],
        "forgetting_questions": {"asked": len(accepted),
                                 "base_correct": len(data["forgetting_keep"])},
        "derangement": manifest["derangement"], "layers": layers,
        "metric_definitions": {m: {"better": METRICS[m][0], "claim": METRICS[m][1],
                                   "what": METRICS[m][2]} for m in METRICS},
        "base": {m: _weighted_mean(*per_item[("base", None)][m]) for m in metrics},
        "conditions": {c: {m: [_weighted_mean(*per_item[(c, s)][m]) for s in seeds]
                           for m in metrics if m in per_item[(c, seeds[0])]}
                       for c in conditions},
        "comparisons": {f"B-{x}": compare(per_item, "B", x, seeds)
                        for x in conditions if x != "B"},
        "wall_time_s": {cell_name(*k): raws[k]["timing"] for k in cells},
        "environment": base["environment"],
        "command": manifest.get("command"),
        "commands": {"prepare": manifest.get("command"),
                     "run": sorted({r["command"] for r in raws.values() if r.get("command")}),
                     "score": command},
        "training": {cell_name(*k): raws[k]["training"] for k in cells if k[0] != "base"},
    }
    atomic_write_json(out / "metrics.json", result)
    atomic_write_text(out / "report.md", report(result))
    plot(result, out)
    log.info(f"score: {len(seeds)} seed(s), conditions {', '.join(conditions)} → "
             f"{out / 'metrics.json'}, {out / 'report.md'}")
    return result
