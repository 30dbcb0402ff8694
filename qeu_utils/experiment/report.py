"""``report.md``: the pre-registered primary endpoints first, then per claim the verdict with the
primary difference and its interval, the strata, the secondary and exploratory tables, stage 1
side by side, the caveats and how the result was made."""

from __future__ import annotations

from qeu_utils.experiment.metrics import METRICS, MIN_K_SHARE, PRIMARY
from qeu_utils.experiment.stats import METHOD


def _fmt(x) -> str:
    if x is None:
        return "—"
    return f"{x:.4f}" if abs(x) < 100 else f"{x:.1f}"


def _signed(x: float) -> str:
    """A difference: 4 decimals, or 3 significant digits when it is smaller than that shows."""
    return f"{x:+.4f}" if x == 0 or abs(x) >= 1e-3 else f"{x:+.2e}"


def _row(r: dict, holm: bool = False) -> str:
    p = f"{r['p']:.3g}" + (f" (Holm {r['p_holm']:.3g})" if holm and "p_holm" in r else "")
    return (f"| {r['metric']} | {r['comparison']} | {_signed(r['difference'])} "
            f"[{_signed(r['ci_lo'])}, {_signed(r['ci_hi'])}] | {p} | {r['n_items']} | "
            f"{r['verdict']} |")


_HEAD = ["| metric | comparison | difference [95% CI] | p | items | verdict |",
         "|---|---|---|---|---:|---|"]


def preregistered() -> list[str]:
    """The primary endpoints as fixed before the run (from :data:`metrics.PRIMARY`)."""
    lines = ["## Pre-registered primary endpoints", "",
             "Fixed in `qeu_utils/experiment/metrics.py` before any run; everything else below "
             "is secondary, and per-kind rows are exploratory.", ""]
    for claim, (what, metric, comparisons, prediction) in PRIMARY.items():
        lines.append(f"- **{claim}** — {what}. Endpoint: `{metric}` ({METRICS[metric][2]}). "
                     f"Comparisons: {', '.join(comparisons)}. Prediction: {prediction}.")
    lines += ["", f"Statistics: {METHOD}. A comparison is *better*/*worse* when its Holm-adjusted "
              "p-value is below 0.05; a claim is **supported** when B is better on every "
              "primary comparison, **not testable on this model** when the knowledge gate finds "
              f"no Chinese to transfer from (the 95% interval of the share of items known from "
              f"Chinese only starts below {MIN_K_SHARE:.0%}) or the endpoint is not estimable "
              "(at its floor or ceiling in every condition), and **not supported** otherwise.",
              ""]
    return lines


def report(result: dict) -> str:
    seeds = result["seeds"]
    env = result["environment"]
    gate = result.get("gate")
    lines = [f"# Curriculum experiment: {result['model']} (profile {result['profile']})", "",
             f"Conditions: base, B (the recipe), C-changed (answers that differ from the "
             f"question deranged within each task; identity pairs kept), C-swap (plain ⇄ "
             f"English, polite ⇄ Chinese). Seeds {', '.join(map(str, seeds))}; stage 1: "
             f"{result['stage1_epochs']} epochs, the same records count, order, steps and LoRA "
             f"initialisation in every condition; every model measured right after stage 1.", ""]
    planned = result.get("seeds_planned", seeds)
    if len(seeds) < len(planned):
        missing = [s for s in planned if s not in seeds]
        lines += [f"**Interim: {len(seeds)} of the {len(planned)} planned seeds are finished "
                  f"({', '.join(map(str, seeds))}; not yet: {', '.join(map(str, missing))}).** "
                  "The claims' verdicts wait "
                  "for all of them; the numbers below are a look at the finished seeds only.",
                  ""]
    lines += preregistered()
    lines += ["## Verdicts", ""]
    for claim, entry in result["primary"].items():
        diff = "" if entry["difference"] is None else (
            f" Primary: `{entry['metric']}` {entry['comparison']} = "
            f"{_signed(entry['difference'])} [{_signed(entry['ci_lo'])}, "
            f"{_signed(entry['ci_hi'])}].")
        lines.append(f"- **{claim}: {entry['verdict']}** — {entry['reason']}.{diff}"
                     + (f" Power: {entry['power']}." if entry.get("power") else ""))
    lines += ["", "| metric | comparison | difference [95% CI] | p | items | verdict |",
              "|---|---|---|---|---:|---|"]
    lines += [_row(r, holm=True) for e in result["primary"].values() for r in e["comparisons"]]
    lines += ["", "Knowledge gate: " + (
        f"K (known from Chinese only) = {gate['K_count']} of {gate['n_items']} items "
        f"({gate['K_share']:.1%}, 95% CI {gate['K_share_ci95'][0]:.1%}–"
        f"{gate['K_share_ci95'][1]:.1%}), from `{gate['source']}`; "
        f"{result['probes_in_gate']} probes are gate items."
        if gate else "none given: strata and testability unknown."), ""]
    strata = result["strata"]
    lines += ["## Recognition by gate stratum", "",
              "Items: " + ", ".join(f"{s} {n}" for s, n in strata["counts"].items()) + ".", "",
              "| comparison | stratum | difference [95% CI] | items |", "|---|---|---|---:|"]
    for name in ("B-C-changed", "B-C-swap", "B-base"):
        for s, r in strata.get(name, {}).items():
            if r:
                lines.append(f"| {name} | {s} | {_signed(r['difference'])} "
                             f"[{_signed(r['ci_lo'])}, {_signed(r['ci_hi'])}] | "
                             f"{r['n_items']} |")
    lines += ["", "`K_minus_rest`: the effect in K minus the effect outside it (the claim "
              "predicts > 0).", "", "## Secondary", "", *_HEAD]
    lines += [_row(r) for rows in result["secondary"].values() for r in rows
              if r["metric"] not in {e["metric"] for e in result["primary"].values()}
              or r["comparison"] == "B-base"]
    lines += ["", "Secondary and exploratory p-values are not adjusted.", "",
              "| metric | better | " + " | ".join(result["conditions"]) + " |",
              "|---|---|" + "---:|" * len(result["conditions"]) + ""]
    for metric in METRICS:
        cells = [result["conditions"][c].get(metric) for c in result["conditions"]]
        if any(cells):
            lines.append(f"| {metric} | {METRICS[metric][0]} | " + " | ".join(
                _fmt(sum(v) / len(v)) if v else "—" for v in cells) + " |")
    lines += ["", "## Exploratory (per kind of probe)", "", *_HEAD]
    lines += [_row(r) for rows in result["exploratory"].values() for r in rows]
    lines += ["", "## Stage 1", "", "| condition | final loss per seed | steps | tokens per "
              "epoch (answers) |", "|---|---|---|---|"]
    for c, losses in result["stage1"]["final_loss"].items():
        tokens = result["stage1"]["tokens_per_epoch"].get(c) or {}
        lines.append(f"| {c} | {', '.join(_fmt(x) for x in losses)} | "
                     f"{', '.join(map(str, result['stage1']['steps'][c]))} | "
                     f"{tokens.get('tokens', '—')} ({tokens.get('completion_tokens', '—')}) |")
    if result.get("durability"):
        lines += ["", "## After stage 2 (durability, secondary)", "", *_HEAD]
        lines += [_row(r) for rows in result["durability"].values() for r in rows]
    lines += ["", "## What the comparisons say", ""]
    lines += [f"- **{e['claim']}**: {e['verdict']} ({e['reason']})."
              for e in result["primary"].values()]
    lines += ["", "## Caveats", "",
              "- C-changed keeps the identity pairs (分 → 分) and every answer of each task, so B "
              "and C-changed share the copy habit; the difference is which changed form goes "
              "with which question. C-changed also keeps the style ⇄ language association "
              "(a plain question still gets a Chinese answer): only C-swap tests the rule.",
              "- `logp_changed` and `logp_copy`, the primary margin's two terms, were added "
              "after the interim look at seed 0 (post hoc, secondary): there C-changed had the "
              "largest margin because copying became unlikely, not because the right form became "
              "likely. The primary endpoint was not changed.",
              "- C-swap changes only the style records (the other categories carry no "
              "register); its answers are English where B's are Chinese and vice versa, so its "
              "tokens differ a little (see Stage 1).",
              "- Generated answers are a sample (about "
              f"{result['settings']['generate_per_kind']} per kind of item), allowed to finish "
              "within twice their kind's longest reference answer (at most "
              f"{result['settings']['max_new_tokens']} tokens); `style_finished` says how many "
              "style answers did.",
              "- With few seeds, a percentile bootstrap over seeds is somewhat narrow (simulated "
              "coverage 85–95%)."
              + (" **One seed only: the intervals carry the items' variance, not training "
                 "noise; read the verdicts as a smoke test.**" if len(seeds) < 2 else ""), "",
              "## Run", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
              + f"; device: {env['device']}; Python {env['python']}.", ""]
    for phase, cmd in result["commands"].items():
        for c in ([cmd] if isinstance(cmd, str) else cmd or []):
            lines.append(f"- {phase}: `{c}`")
    cost = result["cost"]
    est = (cost.get("estimate") or {}).get("total_minutes")
    lines += ["", f"Wall time: {cost['measured_minutes']} min measured in total"
              + (f" (estimated before the run: {est:.0f} min)" if est else "")
              + f"; measuring one cell took {cost['measure_minutes_per_cell']} min on average.",
              "", "| cell | stage1_s | measure_s | total_s |", "|---|---:|---:|---:|"]
    for cell, timing in result["wall_time_s"].items():
        lines.append(f"| {cell} | " + " | ".join(
            str(timing.get(k, "—")) for k in ("stage1_s", "measure_s", "total_s")) + " |")
    return "\n".join(lines) + "\n"
