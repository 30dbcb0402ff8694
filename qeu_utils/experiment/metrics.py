"""What the score phase measures: each metric's definition and the part of the claim it
speaks to, and how one cell's raw answers and measurements become per-item values."""

from __future__ import annotations

import re
from collections import defaultdict

from qeu_utils.evaluation.scoring import compliant, exact_match
from qeu_utils.experiment.controls import asked_form

# metric → (better, part of the claim it speaks to, description)
METRICS = {
    "probe_exact": ("higher", "format", "exact match, all short-answer probes on unseen items"),
    "probe_soft": ("higher", "format", "expected form in the first line, unseen items"),
    "probe_exact_copy": ("higher", "format", "exact match where the answer is the asked form "
                                             "itself (kanji written the same: 山 → 山)"),
    "probe_exact_changed": ("higher", "transfer", "exact match where the answer differs from "
                                                  "the asked form (鉄 → 铁, イタリア → Italy)"),
    "probe_soft_changed": ("higher", "transfer", "expected form in the first line, answer "
                                                 "differs from the asked form"),
    "style_compliance": ("higher", "transfer", "answer in the linked language/style, unseen "
                                               "sentences"),
    "dolly_loss": ("lower", "stage2", "held-out Dolly loss (part 4)"),
    "init_eval_loss": ("lower", "stage2", "loss on the init eval split (B and C trained on "
                                          "its templates)"),
    "forgetting_kept": ("higher", "forgetting", "English questions the base got right, still "
                                                "right"),
    "forgetting_loss": ("lower", "forgetting", "loss on those questions' answers"),
    "kanji_gap_seen": ("higher", "representation", "kanji ja⇄簡 gap, seen kanji"),
    "kanji_gap_unseen": ("higher", "representation", "kanji ja⇄簡 gap, unseen kanji"),
    "kanji_mrr_seen": ("higher", "representation", "kanji ja→簡 retrieval MRR, seen"),
    "kanji_mrr_unseen": ("higher", "representation", "kanji ja→簡 retrieval MRR, unseen"),
    "kanji_top1_seen": ("higher", "representation", "kanji ja→簡 retrieval top-1, seen"),
    "kanji_top1_unseen": ("higher", "representation", "kanji ja→簡 retrieval top-1, unseen"),
    "plain_zh_gap": ("higher", "representation", "plain closer to zh than polite (unseen "
                                                 "sentences)"),
    "polite_en_gap": ("higher", "representation", "polite closer to en than plain (unseen "
                                                  "sentences)"),
    "lens_p_answer_seen": ("higher", "representation", "logit lens p(answer), last layer, seen "
                                                       "kanji"),
    "lens_p_answer_unseen": ("higher", "representation", "logit lens p(answer), last layer, "
                                                         "unseen kanji"),
}
CLAIMS = {
    "format": "the answer format (one form, the asked script) carries to unseen items",
    "transfer": "the model produces the other form of items it never trained on (認識)",
    "representation": "Japanese moves towards its Chinese/English counterparts (ノリ)",
    "stage2": "stage 2 learns better after stage 1",
    "forgetting": "what the model knew in English is kept",
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


def _per_item(raw: dict, data: dict, layers: dict) -> dict:
    """Metric → ``(values, weights)`` per item for one cell (weights: tokens for losses)."""
    values: dict = {}
    probes = data["probes"]
    exact, soft, comply = [], [], []
    changed, changed_soft, copied = [], [], []
    per_kind: dict[str, list[float]] = defaultdict(list)
    for probe, answer in zip(probes, raw["probe_answers"], strict=True):
        kind = probe["kind"]
        if kind.startswith("style_"):
            ok = float(compliant(probe["record"], answer))
            comply.append(ok)
            per_kind[f"{kind}/compliance"].append(ok)
        else:
            hit = float(exact_match(answer, probe["record"]["output"], first_line=True))
            near = float(soft_match(answer, probe["expected"], kind))
            exact.append(hit)
            soft.append(near)
            per_kind[f"{kind}/exact"].append(hit)
            per_kind[f"{kind}/soft"].append(near)
            # A kanji written the same in both scripts (山 → 山) is answered by copying the
            # question: that shows the format, not that the model knows the other form.
            if asked_form(probe["record"]) in probe["expected"]:
                copied.append(hit)
            else:
                changed.append(hit)
                changed_soft.append(near)
    for name, xs in (("probe_exact", exact), ("probe_soft", soft),
                     ("probe_exact_changed", changed), ("probe_soft_changed", changed_soft),
                     ("probe_exact_copy", copied), ("style_compliance", comply)):
        values[name] = xs
    for name, rows in (("dolly_loss", raw["dolly_loss"]), ("init_eval_loss",
                                                           raw["init_eval_loss"])):
        values[name] = ([r["nll"] / max(r["tokens"], 1) for r in rows],
                        [r["tokens"] for r in rows])
    keep = data["forgetting_keep"]
    values["forgetting_kept"] = [float(answers_correctly(raw["forgetting_answers"][i],
                                                         data["forgetting_answers"][i]))
                                 for i in keep]
    rows = [raw["forgetting_loss"][i] for i in keep]
    values["forgetting_loss"] = ([r["nll"] / max(r["tokens"], 1) for r in rows],
                                 [r["tokens"] for r in rows])
    for part in ("seen", "unseen"):
        kanji = raw.get(f"kanji_{part}")
        if kanji:
            layer = layers["kanji"]
            values[f"kanji_gap_{part}"] = kanji["gap"][layer]
            values[f"kanji_mrr_{part}"] = [1.0 / r for r in kanji["rank"][layer]]
            values[f"kanji_top1_{part}"] = [float(r == 1) for r in kanji["rank"][layer]]
        if raw.get(f"lens_{part}"):
            values[f"lens_p_answer_{part}"] = raw[f"lens_{part}"][-1]
    if raw.get("style"):
        for key in ("plain_zh_gap", "polite_en_gap"):
            values[key] = raw["style"][key][layers["style"]]
    result = {}
    for name, v in {**values, **per_kind}.items():
        vals, weights = v if isinstance(v, tuple) else (v, [1.0] * len(v))
        if vals:
            result[name] = (vals, weights)
    return result
