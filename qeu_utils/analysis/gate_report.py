"""The knowledge gate's report (``report.md``) and picture (``gate.png``), written from the
scored rows and the summary of :mod:`qeu_utils.analysis.gate`."""

from __future__ import annotations

from qeu_utils.analysis.gate_items import PROMPTS, candidate_text, prompt_parts
from qeu_utils.core.plotting import pyplot, save_png

__all__ = ["report_markdown", "plot_gate"]

_LABELS = {"K": "K: Chinese prompt only", "both": "both prompts",
           "J": "J: Japanese prompt only", "neither": "neither"}
_COLOURS = {"K": "#d62728", "both": "#2ca02c", "J": "#1f77b4", "neither": "#c7c7c7"}
_KIND_COLOURS = {"kanji": "#d62728", "country": "#1f77b4", "loanword": "#2ca02c"}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _table(summary: dict) -> list[str]:
    lines = ["| items | n | K | both | J | neither | known zh | known ja | known few-shot |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def row(name: str, c: dict) -> str:
        known = " | ".join(f"{c['known'][p]} ({_pct(c['known_share'][p])})" for p in PROMPTS)
        return (f"| {name} | {c['items']} | {c['K']} | {c['both']} | {c['J']} | "
                f"{c['neither']} | {known} |")

    lines += [row(task, c) for task, c in summary["by_task"].items()]
    lines += [row(f"**{kind}**", c) for kind, c in summary["by_kind"].items()]
    lines.append(row("**all**", summary["all"]))
    return lines


def _rivals_table(summary: dict) -> list[str]:
    """Per task and prompt, how many answers beat the copy and the distractor on their own."""
    lines = ["| items | n | " + " | ".join(f"{p}: > copy | {p}: > distractor" for p in PROMPTS)
             + " |", "|---|---:|" + "---:|" * (2 * len(PROMPTS))]
    groups = [*summary["by_task"].items(), ("**all**", summary["all"])]
    for name, c in groups:
        cells = " | ".join(f"{c['beats_copy'][p]} | {c['beats_distractor'][p]}" for p in PROMPTS)
        lines.append(f"| {name} | {c['items']} | {cells} |")
    return lines


def _prompt_examples(summary: dict, rows: list[dict]) -> list[str]:
    lines = []
    for task in summary["by_task"]:
        row = next(r for r in rows if r["task"] == task)
        demos = [tuple(d) for d in summary["demos"].get(task, [])]
        lines.append(f"- `{task}` ({row['question']} → {row['answer']}; copy "
                     f"{row['question']}, distractor {row['distractor']}):")
        for prompt in PROMPTS:
            head, tail = prompt_parts(task, prompt, row["question"], demos)
            text = (head + tail + candidate_text(prompt, row["answer"])).replace("\n", "⏎")
            lines.append(f"  - {prompt}: `{text}`")
    return lines


def _reading(summary: dict) -> list[str]:
    p, s, a = summary["primary"], summary["secondary"], summary["all"]
    lo, hi = s["K_minus_J_ci95"]
    if lo > 0:
        verdict = ("the Chinese frame alone knows more items than the Japanese frame alone, "
                   "beyond what item sampling explains")
    elif hi < 0:
        verdict = ("the Japanese frame alone knows more items than the Chinese frame alone, "
                   "beyond what item sampling explains")
    else:
        verdict = ("the two frames' disagreements go both ways about equally: the interval of "
                   "K − J includes 0, so K cannot be told apart from the noise of switching "
                   "prompts")
    n = a["items"]
    rivals = (f"The answer beats the copy on {a['beats_copy']['zh']} items from the Chinese "
              f"prompt, {a['beats_copy']['ja']} from the Japanese and "
              f"{a['beats_copy']['fewshot']} from the few-shot prompt, and the distractor on "
              f"{a['beats_distractor']['zh']}, {a['beats_distractor']['ja']} and "
              f"{a['beats_distractor']['fewshot']} (a model that only guessed would beat it "
              f"on about {n // 2}).")
    rough = (" With fewer than 10 items in K the percentile interval is rough: read the count."
             if p["K_count"] < 10 else "")
    return [
        f"The Chinese prompt makes {a['known']['zh']} of {a['items']} items known "
        f"({_pct(a['known_share']['zh'])}), the Japanese prompt {a['known']['ja']} "
        f"({_pct(a['known_share']['ja'])}), the few-shot prompt {a['known']['fewshot']} "
        f"({_pct(a['known_share']['fewshot'])}). K holds {p['K_count']} items "
        f"({_pct(p['K_share'])}); J holds {a['J']}. K − J = {_pct(s['K_minus_J_share'])} of the "
        f"items (95% CI {_pct(lo)} to {_pct(hi)}): {verdict}. Were the two prompts' verdicts "
        f"independent at these rates, K would hold {_pct(s['K_share_if_independent'])} of the "
        f"items.{rough}",
        "",
        rivals,
    ]


def report_markdown(summary: dict, rows: list[dict]) -> str:
    """``report.md``: what was measured, the definition of known, the table, how to read it
    and what it cannot say."""
    p, t = summary["primary"], summary["timing"]
    lo, hi = p["K_share_ci95"]
    c_lo, c_hi = p["K_count_ci95"]
    k_lines = []
    for task in summary["by_task"]:
        k_rows = sorted((r for r in rows if r["stratum"] == "K" and r["task"] == task),
                        key=lambda r: -min(r["zh"]["margin_copy"], r["zh"]["margin_distractor"]))
        if k_rows:
            k_lines.append(f"- `{task}` ({len(k_rows)}): " + ", ".join(
                f"{r['question']}→{r['answer']}" for r in k_rows[:15])
                + (", …" if len(k_rows) > 15 else ""))
    lines = [
        f"# Knowledge gate: {summary['model']}",
        "",
        f"Command: `{summary['command'] or 'run_gate(...)'}`",
        "",
        f"**Primary: K = {p['K_count']} of {summary['n_items']} items "
        f"({_pct(p['K_share'])}, 95% bootstrap CI {_pct(lo)}–{_pct(hi)}, i.e. "
        f"{c_lo:.0f}–{c_hi:.0f} items).**",
        "",
        "## What was measured",
        "",
        "The base model, with teacher forcing (no generation, no chat template): for each item, "
        "the summed log-probability of the right answer's tokens after a prompt, and of two "
        "rivals, the *copy* (the question itself given as the answer) and a *distractor* "
        "(another item's answer of the same task: for a kanji the nearest answer form with "
        "the same lead UTF-8 byte, which in Unicode's radical-stroke order is usually a "
        "character of the same radical; for a country or loanword another one drawn with the "
        "seed). Each answer is closed by its quote (or line end), so a prefix of a longer form "
        "does not count as that form. Every item is scored from three prompts: a Chinese one, "
        "a Japanese one, and a few-shot one (4 demonstrations per task, drawn with the seed "
        "from items that are not scored, shown as `question → answer` lines). Items, with an "
        "example of each prompt as the model reads it (⏎ = line break):",
        "",
        *_prompt_examples(summary, rows),
        "",
        "Items: Jōyō kanji (OpenCC) whose Simplified or Traditional form differs from the "
        "Japanese one, a seeded sample of CLDR's 195 countries in three directions, loanwords "
        "harvested from "
        "the project's texts; only items whose answer differs from the question. "
        f"Settings: {summary['settings']}.",
        "",
        "## Definition of known (fixed before the run)",
        "",
        summary["definition_of_known"],
        "Strata compare the Chinese and the Japanese prompt: **K** = known from the Chinese "
        "prompt and not from the Japanese one (the items the curriculum's claim is about: the "
        "model has the knowledge, but does not reach it through Japanese); **both**; **J** = "
        "known from the Japanese prompt only; **neither**. The few-shot prompt does not enter "
        "the strata; it shows how much the model knows with no instruction at all.",
        "",
        "## Result",
        "",
        *_table(summary),
        "",
        *_reading(summary),
        "",
        *_rivals_table(summary),
        "",
        "Items in K per task, largest Chinese-prompt margin first (up to 15 each):",
        "",
        *(k_lines or ["- (none)"]),
        "",
        "`items.jsonl` holds every item's raw log-probabilities, token counts, per-token means "
        "and margins per prompt; `gate.png` shows the strata per task and each item's smaller "
        "margin from the Chinese against the Japanese prompt.",
        "",
        "## How to read it",
        "",
        "- K is an upper bound on what the curriculum could unlock by linking Japanese to "
        "Chinese: the item is there from Chinese and missing from Japanese. Items in *both* "
        "need no transfer, items in *neither* cannot be transferred (there is nothing to "
        "reach), and items in J go the wrong way.",
        "- Read K against J: two different wordings of one question disagree on some items "
        "by chance alone, in both directions. Only K − J above 0 says the Chinese frame "
        "reaches knowledge the Japanese frame does not.",
        "- The two rivals say why an item is not known (the second table): an answer that "
        "beats the distractor but not the copy is a pairing the model has but does not give "
        "in that frame, because echoing the quoted question is likelier; an answer that does "
        "not beat the distractor either is not there.",
        "- Compare tasks by the language of the answer: a frame favours answers in its own "
        "script (a Simplified character is unusual inside a Japanese sentence, katakana inside "
        "a Chinese one). Tasks answered in Chinese can only put items in K by that preference "
        "as much as by knowledge; the task answered in Japanese (`country_zh_ja`) shows the "
        "same preference the other way, as J.",
        "- A model with little Chinese (low known rates from every prompt, K near J) cannot "
        "test the claim: that is \"not testable\", not \"not supported\".",
        "",
        "## What it cannot say",
        "",
        "- Ranking the right form above two rivals is not producing it: a model may rank the "
        "answer first among three and still generate something else.",
        "- Knowledge and the frame's script preference are not separated: K holds items the "
        "Chinese frame gets right, whether because it reaches a pairing the Japanese frame "
        "does not or because it makes a Chinese-script answer plausible text.",
        "- One wording per language: another phrasing could move items between strata; the "
        "interval covers the sampling of items, not of prompts.",
        "- Summed log-probabilities favour short answers; the per-token means in "
        "`items.jsonl` allow a re-scoring that does not.",
        "- It measures the base model only; whether training moves items out of K is the "
        "experiment's question, not the gate's.",
        "",
        "## Timing",
        "",
        f"Model load {t['load_s']} s, scoring {t['score_s']} s on {t['device']} "
        f"({t['dtype']}, torch threads: {t['torch_threads']}), {summary['n_items']} items × 3 "
        "prompts × 3 candidates.",
        "",
    ]
    return "\n".join(lines)


def plot_gate(rows: list[dict], summary: dict, path) -> None:
    """Left: the share of each stratum per task. Middle: the share known from each prompt per
    task. Right: per item, the smaller of the two margins from the Chinese prompt (x) against
    the Japanese prompt (y), on a scale linear near 0 (where known is decided) and
    logarithmic beyond; K is the lower right quadrant, where a few items are labelled."""
    plt = pyplot()
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 5.6),
                                              gridspec_kw={"width_ratios": [1, 0.8, 1.1]})
    tasks = list(summary["by_task"])
    for i, task in enumerate(tasks):
        counts, start = summary["by_task"][task], 0.0
        for s in _LABELS:
            share = counts[s] / counts["items"]
            left.barh(i, share, left=start, color=_COLOURS[s],
                      label=_LABELS[s] if i == 0 else None)
            if share >= 0.06:
                left.text(start + share / 2, i, str(counts[s]), ha="center", va="center",
                          fontsize=8)
            start += share
    example = {task: next(r for r in rows if r["task"] == task) for task in tasks}
    left.set_yticks(range(len(tasks)),
                    [f"{t}\n{example[t]['question']}→{example[t]['answer']}" for t in tasks],
                    fontsize=8)
    left.invert_yaxis()
    left.set_xlim(0, 1)
    left.set_xlabel("share of items")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8)
    p = summary["primary"]
    left.set_title(f"strata: K = {p['K_count']} of {summary['n_items']} items "
                   f"({_pct(p['K_share'])}, CI {_pct(p['K_share_ci95'][0])}–"
                   f"{_pct(p['K_share_ci95'][1])})", fontsize=10)

    for j, (prompt, colour) in enumerate(zip(PROMPTS, ("#ff7f0e", "#9467bd", "#7f7f7f"),
                                             strict=True)):
        shares = [summary["by_task"][t]["known_share"][prompt] for t in tasks]
        middle.barh([i + (j - 1) * 0.27 for i in range(len(tasks))], shares, height=0.27,
                    color=colour, label={"zh": "Chinese prompt", "ja": "Japanese prompt",
                                         "fewshot": "few-shot"}[prompt])
    middle.set_yticks(range(len(tasks)), [""] * len(tasks))
    middle.invert_yaxis()
    middle.set_xlim(0, 1)
    middle.set_xlabel("share of items known")
    middle.set_title("known from each prompt", fontsize=10)
    middle.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=8)

    def margin(row, prompt):
        return min(row[prompt]["margin_copy"], row[prompt]["margin_distractor"])

    for kind, colour in _KIND_COLOURS.items():
        pts = [(margin(r, "zh"), margin(r, "ja")) for r in rows if r["kind"] == kind]
        if pts:
            xs, ys = zip(*pts, strict=True)
            right.scatter(xs, ys, s=8, alpha=0.5, color=colour, label=kind)
    right.set_xscale("symlog", linthresh=2)
    right.set_yscale("symlog", linthresh=2)
    right.axhline(0, color="black", lw=0.6)
    right.axvline(0, color="black", lw=0.6)
    k_rows = sorted((r for r in rows if r["stratum"] == "K"), key=lambda r: -margin(r, "zh"))
    for n, r in enumerate(k_rows[:6]):
        # Labels stacked in the K quadrant's corner, each with a line to its point.
        right.annotate(f"{r['question']}→{r['answer']}", (margin(r, "zh"), margin(r, "ja")),
                       xytext=(0.86, 0.42 - 0.065 * n), textcoords="axes fraction",
                       fontsize=8, arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "grey"})
    right.set_xlabel("Chinese prompt: min(margin over copy, over distractor), nats")
    right.set_ylabel("Japanese prompt: the same, nats")
    right.set_title("each item (K = lower right; symlog axes)", fontsize=10)
    right.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Knowledge gate: {summary['model']}", fontsize=11)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
