"""``report.md``: the scored result in words — a table per metric, what each comparison says
about each part of the claim, the caveats and how the result was made."""

from __future__ import annotations

from qeu_utils.experiment.metrics import CLAIMS, METRICS
from qeu_utils.experiment.stats import _mean


def _fmt(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 100 else f"{x:.1f}"


def _signed(x: float) -> str:
    """A difference: 4 decimals, or 3 significant digits when it is smaller than that shows."""
    return f"{x:+.4f}" if x == 0 or abs(x) >= 1e-3 else f"{x:+.2e}"


def report(result: dict) -> str:
    """The verdicts in words: a table per metric, then which comparison supports which part
    of the claim."""
    comps = result["comparisons"]
    conditions = list(result["conditions"])
    rows = {name: {r["metric"]: r for r in comp} for name, comp in comps.items()}
    seeds = result["seeds"]
    env = result["environment"]
    lines = [
        f"# Curriculum experiment: {result['model']} (profile {result['profile']})", "",
        f"Seeds {', '.join(map(str, seeds))}; stage 1: {result['stage1_epochs']} epochs "
        f"(B on the initialization records, C on the link-broken copy), merged; stage 2: "
        f"{result['stage2_steps']} steps on Dolly part 1 with a fresh adapter, the same seed "
        f"and budget in every condition. Probes on items no condition trained on: "
        + ", ".join(f"{k} {v}" for k, v in result["probes"].items()) + ".",
        f"Kanji alignment at layer {result['layers']['kanji']} (the base model's best on unseen "
        f"kanji), style link at layer {result['layers']['style']}, logit lens at the last "
        f"layer. Forgetting: {result['forgetting_questions']['base_correct']} of "
        f"{result['forgetting_questions']['asked']} English questions the base model answers "
        "correctly.", "",
        "Differences are B − A and B − C, the mean over seeds of paired differences; the 95% "
        "interval is the wider of a Student-t interval over seeds (exact quantile; needs ≥ 2 "
        "seeds) and a paired bootstrap over items. A verdict needs the interval to exclude 0."
        + (" **One seed only: the intervals cover the items, not training noise; read the "
           "verdicts as a smoke test, not a result.**" if len(seeds) < 2 else ""),
        "",
        "| metric | better | base | " + " | ".join(conditions) + " | "
        + " | ".join(f"{name} [95% CI] | verdict" for name in comps) + " |",
        "|---|---|---:|" + "---:|" * len(conditions) + "---:|---|" * len(comps),
    ]
    main = [m for m in METRICS if m in result["base"]]
    extra = [m for m in result["base"] if m not in METRICS]
    for metric in main + extra:
        cells = [_fmt(_mean(result["conditions"][c][metric])) if metric in
                 result["conditions"][c] else "—" for c in conditions]
        comp_cells = []
        for name in comps:
            r = rows[name].get(metric)
            comp_cells.append("— | —" if r is None else
                              f"{_signed(r['difference'])} [{_signed(r['ci_lo'])}, "
                              f"{_signed(r['ci_hi'])}] | {r['verdict']}")
        better = METRICS.get(metric, ("higher",))[0]
        lines.append(f"| {metric} | {better} | {_fmt(result['base'][metric])} | "
                     + " | ".join(cells) + " | " + " | ".join(comp_cells) + " |")
    lines += ["", "## What the comparisons say", ""]
    lines += reading(result)
    lines += ["", "## Caveats", "",
              "- C keeps every record's question, script and format, and the answers of each "
              "task as a whole — so it keeps the *style ⇄ language* association (a plain "
              "question still gets a Chinese answer) and breaks only the item-level pairing. "
              "B − C therefore isolates the pairings, not the style ⇄ script habit.",
              "- B − A on the losses also contains stage 1's extra steps; "
              + ("D (A with extra stage-2 steps worth B's stage-1 tokens) controls for that."
                 if "B-D" in comps else
                 "no D condition was run here, so a loss advantage of B over A is not evidence "
                 "for the curriculum unless B − C shows it too."),
              "- init_eval_loss is on the initialization eval split, whose templates B and C "
              "trained on: meaningful for B − C, not for B − A.",
              "- Per-kind rows (`kind/exact`, `kind/soft`, `kind/compliance`) have ~"
              f"{max(result['probes'].values(), default=0)} items each at most; the pooled rows "
              "are the ones to read first.", "",
              "## Run", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
              + f"; device: {env['device']}; Python {env['python']}.",
              f"Command: `{result['command']}`" if result.get("command") else "", "",
              "| cell | " + " | ".join(("stage1_s", "stage2_s", "measure_s", "total_s")) + " |",
              "|---|---:|---:|---:|---:|"]
    for cell, timing in result["wall_time_s"].items():
        lines.append(f"| {cell} | " + " | ".join(
            str(timing.get(k, "—")) for k in ("stage1_s", "stage2_s", "measure_s", "total_s"))
            + " |")
    return "\n".join(lines) + "\n"


def reading(result: dict) -> list[str]:
    """One sentence per part of the claim, from the verdicts."""
    comps = {name: {r["metric"]: r for r in comp} for name, comp in result["comparisons"].items()}
    lines = []
    for claim, what in CLAIMS.items():
        metrics = [m for m in METRICS if METRICS[m][1] == claim and m in result["base"]]
        found = {}
        for name in ("B-A", "B-C"):
            rows = [comps.get(name, {}).get(m) for m in metrics]
            rows = [r for r in rows if r]
            found[name] = ([r["metric"] for r in rows if r["verdict"] == "B better"],
                           [r["metric"] for r in rows if r["verdict"] == "B worse"])
        better_a, worse_a = found["B-A"]
        better_c, worse_c = found["B-C"]
        if not metrics:
            verdict = ("not measured (the base model answers none of the questions correctly)"
                       if claim == "forgetting" else "not measured")
        elif claim == "forgetting":
            if worse_a:
                verdict = f"not supported: B forgets more than A ({', '.join(worse_a)})"
            else:
                verdict = "no sign of extra forgetting after stage 1 (B − A)"
        elif better_a and better_c and not (worse_a or worse_c):
            verdict = (f"supported — B beats A ({', '.join(better_a)}) and the link-broken "
                       f"control C ({', '.join(better_c)})")
        elif better_a and not better_c:
            verdict = (f"stage 1 helps (B > A on {', '.join(better_a)}), but B does not beat the "
                       "link-broken control C: the links are not shown to be what helped")
        elif better_c and not better_a:
            verdict = (f"B beats the control C ({', '.join(better_c)}) but not stage 2 alone "
                       "(A)")
        elif worse_a or worse_c:
            verdict = ("not supported: B is worse on "
                       + ", ".join(f"{m} (vs A)" for m in worse_a)
                       + (", " if worse_a and worse_c else "")
                       + ", ".join(f"{m} (vs C)" for m in worse_c))
        else:
            verdict = "not shown: no metric differs beyond its interval"
        used = f" ({', '.join(metrics)})" if metrics else ""
        lines.append(f"- **{what}**{used}: {verdict}.")
    return lines
