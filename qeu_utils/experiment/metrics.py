"""What the score phase measures: the pre-registered primary endpoint of each claim, every
metric's definition, and how one cell's raw measurements and answers become per-item values.

The primary endpoints (:data:`PRIMARY`) are fixed here, before any run, and the report states
them before its numbers. Everything else is secondary (:data:`METRICS`) or, per kind of probe,
exploratory.
"""

from __future__ import annotations

import re
from collections import defaultdict

# claim → (what it says, primary metric, primary comparisons, what the claim predicts)
PRIMARY = {
    "recognition": (
        "the model recognises unseen items through their other form (認識)",
        "margin_changed", ("B-C-changed", "B-C-swap"),
        "B > C-changed and B > C-swap; a larger effect in K (known from Chinese) than outside"),
    "rule": (
        "stage 1 teaches the rule 常体 → 中国語, 敬体 → 英語",
        "rule_margin", ("B-C-swap",),
        "B > C-swap: with an instruction that names no language, B answers a plain sentence in "
        "Chinese and a polite one in English more than the swapped control does"),
    "representation": (
        "Japanese moves towards its Chinese counterpart (日本語のベクトル＝中国語のベクトル)",
        "kanji_gap_unseen", ("B-C-changed", "B-C-swap"),
        "B > C-changed and B > C-swap on unseen kanji"),
}
COMPARISONS = ("B-C-changed", "B-C-swap", "B-base")
# The gate decides whether a claim about Chinese can be tested on this model at all: the lower
# end of the 95% interval of the share of items known from Chinese only (K) must reach this.
MIN_K_SHARE = 0.05
_P = (0.0, 1.0)
# metric → (better, bounds (a floor/ceiling every item can sit at) or None, description)
METRICS = {
    "margin_changed": ("higher", None, "teacher-forced margin (nats) of the right form over "
                       "copying the question; unseen kanji, country and loanword probes whose "
                       "answer differs from the question (those in the knowledge gate, when "
                       "there is one)"),
    "rule_margin": ("higher", None, "teacher-forced margin (nats) of plain → Chinese over "
                    "English and polite → English over Chinese (their mean per sentence), one "
                    "instruction that names no language; unseen sentences"),
    "kanji_gap_unseen": ("higher", None, "kanji ja⇄簡 cosine gap (matched − others), unseen "
                         "kanji, at the base model's best layer"),
    # The primary margin's two terms, added after the interim look at seed 0 (post hoc): there
    # C-changed's margin was the largest because it made copying unlikely, not the right form
    # likely, so each term is reported on its own.
    "logp_changed": ("higher", None, "teacher-forced log p (nats) of the right changed form, "
                     "the margin's first term (added after seed 0's interim look)"),
    "logp_copy": ("lower", None, "teacher-forced log p (nats) of copying the question's form, "
                  "the margin's second term (added after seed 0's interim look)"),
    "exact_changed": ("higher", _P, "exact match (answers allowed to finish), generated sample, "
                      "answer differs from the question"),
    "copy_rate": ("lower", _P, "the answer is the question's own form, generated sample, answer "
                  "differs from the question"),
    "exact_identity": ("higher", _P, "exact match where the answer is the question's own form "
                       "(山 → 山): the format"),
    "style_compliance": ("higher", _P, "style answer in the linked language or style, generated "
                         "sample"),
    "style_finished": ("higher", _P, "style answer ended (end token or stop string) within "
                       "max_new_tokens"),
    "kanji_gap_seen": ("higher", None, "kanji ja⇄簡 cosine gap, seen kanji"),
    "kanji_top1_unseen": ("higher", _P, "kanji ja→簡 retrieval@1 among all unseen 簡 forms"),
    "kanji_foil_top1_unseen": ("higher", _P, "kanji ja→簡 retrieval@1 against orthographic foils "
                               "(簡 forms sharing the first token or UTF-8 bytes), unseen"),
    "plain_zh_gap": ("higher", None, "plain sentence closer to its Chinese than polite is"),
    "polite_en_gap": ("higher", None, "polite sentence closer to its English than plain is"),
    "lens_p_answer_unseen": ("higher", None, "logit lens p(answer token), last layer, unseen "
                             "kanji whose 簡 form is one token"),
    "init_eval_loss": ("lower", None, "loss on the init eval split (held-out items)"),
    "forgetting_loss": ("lower", None, "loss on the answers of English questions"),
    "dolly_loss": ("lower", None, "held-out Dolly loss (after stage 2 only)"),
}


def soft_match(answer: str, expected: list[str], kind: str) -> bool:
    """A softer score than exact match: the expected form appears in the answer's first line
    (kanji: any candidate form; English names and words case-insensitive)."""
    lines = answer.strip().splitlines()
    head = lines[0] if lines else ""
    if kind == "loanword_to_en" or kind == "country_ja_to_en":
        head = head.lower()
        return any(e.lower() in head for e in expected)
    return any(e in head for e in expected)


def answers_correctly(answer: str, accepted: list[str]) -> bool:
    """Whether an English answer contains one of the accepted answers as a whole word."""
    return any(re.search(rf"(?<![\w.]){re.escape(a)}(?![\w])", answer, re.IGNORECASE)
               for a in accepted)


def score_answers(items: list[dict], probes: list[dict]) -> None:
    """Add ``exact``, ``copy`` (short answers) or ``compliant`` (style) to each item row with
    an answer (needs the text tools: ``detect_style``, the kanji answer forms)."""
    from qeu_utils.evaluation.scoring import compliant, exact_match

    for row in items:
        if "answer" not in row:
            continue
        probe = probes[row["i"]]
        if probe["kind"].startswith("style_"):
            row["compliant"] = compliant(probe["record"], row["answer"])
        else:
            row["exact"] = exact_match(row["answer"], probe["record"]["output"], first_line=True)
            row["copy"] = exact_match(row["answer"], probe["rival"], first_line=True) \
                if probe["changed"] else False


def per_item(raw: dict, items: list[dict], layers: dict) -> dict:
    """Metric → ``(values, weights)`` per item for one cell, the items in the same order in
    every cell (weights: tokens for losses, else 1); ``<metric>/<kind>`` rows are exploratory."""
    values: dict = defaultdict(list)
    for row in items:
        kind = row["kind"]
        if "margin" in row:
            values["margin_changed"].append(row["margin"])
            values[f"margin_changed/{kind}"].append(row["margin"])
            values["logp_changed"].append(row["logp"])
            values["logp_copy"].append(row["rival_logp"])
        if "answer" not in row:
            continue
        if kind.startswith("style_"):
            values["style_compliance"].append(float(row["compliant"]))
            values["style_finished"].append(float(row["finished"]))
            values[f"style_compliance/{kind}"].append(float(row["compliant"]))
        elif row["changed"]:
            values["exact_changed"].append(float(row["exact"]))
            values["copy_rate"].append(float(row["copy"]))
            values[f"exact_changed/{kind}"].append(float(row["exact"]))
        else:
            values["exact_identity"].append(float(row["exact"]))
    rule = raw.get("rule") or []
    values["rule_margin"] = [(a + b) / 2 for a, b in zip(rule[0::2], rule[1::2], strict=True)]
    result = {k: (v, [1.0] * len(v)) for k, v in values.items()}
    for name in ("init_eval_loss", "forgetting_loss", "dolly_loss"):
        if raw.get(name):
            result[name] = ([r["nll"] / max(r["tokens"], 1) for r in raw[name]],
                            [r["tokens"] for r in raw[name]])
    for part in ("seen", "unseen"):
        kanji = raw.get(f"kanji_{part}")
        if kanji:
            layer = layers["kanji"]
            result[f"kanji_gap_{part}"] = _ones(kanji["gap"][layer])
            if part == "unseen":
                result["kanji_top1_unseen"] = _ones([float(r == 1) for r in kanji["rank"][layer]])
                result["kanji_foil_top1_unseen"] = _ones(
                    [x for x in kanji["foil_top1"][layer] if x is not None])
        lens = (raw.get(f"lens_{part}") or {}).get("p_answer")
        if lens:
            result[f"lens_p_answer_{part}"] = _ones(lens[-1])
    if raw.get("style"):
        for key in ("plain_zh_gap", "polite_en_gap"):
            result[key] = _ones(raw["style"][key][layers["style"]])
    return {k: v for k, v in result.items() if v[0]}


def _ones(values: list) -> tuple[list, list]:
    return list(values), [1.0] * len(values)


def strata_of(items: list[dict]) -> list[str]:
    """The gate stratum of each ``margin_changed`` item (``outside`` where not in the gate)."""
    return [row["stratum"] or "outside" for row in items if "margin" in row]

