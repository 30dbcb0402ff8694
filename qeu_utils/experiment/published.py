"""The project's committed results, in the package: what a reader on Colab (a pip install, no
``results/`` folder) is shown by notebooks 00 and 10.

``results/<name>/`` in the repository holds a long run's whole output; :func:`summarize` keeps
what the notebooks quote — the settings, the comparison rows with their intervals and verdicts,
the report's reading in words — and :func:`publish` writes it to
``qeu_utils/data/results/<name>.json``. A test checks that each packaged summary equals the one
made from ``results/`` now, so the two cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

from qeu_utils.core.atomic import atomic_write_text
from qeu_utils.core.resources import data_path

# The results the package carries, in the order the notebooks quote them.
PUBLISHED = ("gate-gemma3-270m", "gate-smollm2-135m-instruct", "curriculum-smollm2-135m-cpu")
ROW_KEYS = ("metric", "comparison", "difference", "ci_lo", "ci_hi", "p_holm", "verdict",
            "n_items", "n_seeds")


def summarize(result_dir: str | Path) -> dict:
    """The quotable part of one committed result folder (``gate-*`` or ``curriculum-*``)."""
    result_dir = Path(result_dir)
    name = result_dir.name
    if name.startswith("gate-"):
        gate = _json(result_dir / "summary.json")
        return {"name": name, "kind": "gate", "model": gate["model"], "command": gate["command"],
                "n_items": gate["n_items"], "primary": gate["primary"],
                "by_kind": {kind: {k: v for k, v in row.items() if k in ("items", "K")}
                            for kind, row in gate["by_kind"].items()}}
    if name.startswith("curriculum-"):
        metrics = _json(result_dir / "metrics.json")
        report = (result_dir / "report.md").read_text(encoding="utf-8")
        reading = report.split("## What the comparisons say", 1)[1].split("\n## ", 1)[0]
        common = {"name": name, "kind": "curriculum", "model": metrics["model"],
                  "profile": metrics["profile"], "seeds": metrics["seeds"],
                  "stage1_epochs": metrics["stage1_epochs"], "probes": metrics["probes"],
                  "reading": [line for line in reading.strip().splitlines() if line.strip()]}
        if "primary" not in metrics:  # the first design (A/B/C, measured after stage 2)
            return {**common, "stage2_steps": metrics["stage2_steps"],
                    "command": metrics.get("command"),
                    "comparisons": {comp: [_row(row) for row in rows]
                                    for comp, rows in metrics["comparisons"].items()}}
        strata = metrics["strata"]
        return {**common, "seeds_planned": metrics.get("seeds_planned", metrics["seeds"]),
                "measured_after": metrics["measured_after"], "commands": metrics["commands"],
                "primary": {claim: {"claim": e["claim"], "metric": e["metric"],
                                    "verdict": e["verdict"], "reason": e["reason"],
                                    "comparisons": [_row(r) for r in e["comparisons"]]}
                            for claim, e in metrics["primary"].items()},
                "strata": {"counts": strata["counts"], "means": strata["means"],
                           **{comp: {s: _row(r) for s, r in rows.items() if r}
                              for comp, rows in strata.items()
                              if comp not in ("counts", "means")}},
                "stage1_final_loss": metrics["stage1"]["final_loss"],
                "wall_minutes": metrics["cost"]["measured_minutes"]}
    raise ValueError(f"{result_dir}: not a committed result (expected a gate-* or curriculum-* "
                     "folder)")


def publish(results_root: str | Path, names: tuple[str, ...] = PUBLISHED,
            out: str | Path | None = None) -> list[Path]:
    """Write the summary of each ``results_root/<name>`` into the package's data (or ``out``)."""
    out = Path(out) if out else data_path("results")
    written = []
    for name in names:
        path = out / f"{name}.json"
        atomic_write_text(path, json.dumps(summarize(Path(results_root) / name),
                                           ensure_ascii=False, indent=1) + "\n")
        written.append(path)
    return written


def load(name: str) -> dict:
    """A packaged result summary by name (one of ``PUBLISHED``)."""
    if name not in PUBLISHED:
        raise ValueError(f"no published result {name!r}; the package has {', '.join(PUBLISHED)}")
    return _json(data_path("results", f"{name}.json"))


def comparison_table(summary: dict, metrics: list[str] | None = None) -> str:
    """Markdown: one row per metric, one column per comparison (difference [95% interval],
    verdict)."""
    comps = summary["comparisons"]
    rows = {comp: {r["metric"]: r for r in table} for comp, table in comps.items()}
    order = metrics or [r["metric"] for r in next(iter(comps.values()))]
    lines = ["| metric | " + " | ".join(f"{comp} [95% CI] | verdict" for comp in comps) + " |",
             "|---|" + "---:|---|" * len(comps)]
    for metric in order:
        cells = []
        for comp in comps:
            r = rows[comp].get(metric)
            cells.append("— | —" if r is None else
                         f"{r['difference']:+.3f} [{r['ci_lo']:+.3f}, {r['ci_hi']:+.3f}] | "
                         f"{r['verdict']}")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def primary_table(summary: dict) -> str:
    """Markdown: each claim's primary comparisons (difference [95% interval], Holm-adjusted p,
    the row's verdict) and the claim's verdict, for a result of the redesigned experiment."""
    if "primary" not in summary:
        raise ValueError(f"{summary['name']}: a first-design result has no primary endpoints; "
                         "use comparison_table")
    lines = ["| claim | endpoint | comparison | difference [95% CI] | p (Holm) | row | claim's "
             "verdict |", "|---|---|---|---:|---:|---|---|"]
    for claim, entry in summary["primary"].items():
        for r in entry["comparisons"]:
            lines.append(f"| {claim} | {entry['metric']} | {r['comparison']} | "
                         f"{r['difference']:+.3f} [{r['ci_lo']:+.3f}, {r['ci_hi']:+.3f}] | "
                         f"{r['p_holm']:.3g} | {r['verdict']} | {entry['verdict']} |")
    return "\n".join(lines)



def strata_table(summary: dict) -> str:
    """Markdown: the recognition endpoint's comparisons within each stratum of the knowledge
    gate (K: known from Chinese only), and K minus the rest, which the claim predicts > 0."""
    strata = summary["strata"]
    comps = [c for c in strata if c not in ("counts", "means")]
    names = [s for s, n in strata["counts"].items() if n] + ["K_minus_rest"]
    lines = ["| stratum | items | " + " | ".join(f"{c} [95% CI]" for c in comps) + " |",
             "|---|---:|" + "---:|" * len(comps)]
    for name in names:
        cells = [f"{r['difference']:+.2f} [{r['ci_lo']:+.2f}, {r['ci_hi']:+.2f}]"
                 if (r := strata[c].get(name)) else "—" for c in comps]
        items = strata["counts"].get(name, strata["counts"].get("K"))
        lines.append(f"| {name} | {items} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _row(row: dict) -> dict:
    return {k: row[k] for k in ROW_KEYS if k in row}


def _json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (is this a committed result folder?)")
    return json.loads(path.read_text(encoding="utf-8"))
