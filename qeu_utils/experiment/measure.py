"""What the run phase records of one model, raw: per-record losses, greedy answers, per-item
kanji alignment, the style link and logit-lens probabilities at every layer. Nothing here
needs the text tools; scoring the answers is left to the score phase."""

from __future__ import annotations

import json
from pathlib import Path

from qeu_utils.core.records import read_jsonl
from qeu_utils.evaluation.generation import generate_answers
from qeu_utils.evaluation.heldout import heldout_loss
from qeu_utils.experiment.layout import _read_lines, dolly_eval


def measure(model, tokenizer, data: Path, settings: dict, label: str = "") -> dict:
    """Everything one model needs measured, raw (nothing that needs the text tools):
    per-record losses on Dolly eval, the init eval split and the forgetting questions; greedy
    answers to the probes and the forgetting questions; per-item kanji alignment (seen and
    unseen), the per-sentence style link, and the logit lens's p(answer), every layer."""
    # torch-heavy: imported when the run phase measures, not when the experiment is imported
    from qeu_utils.analysis.hidden_states import pooled_states, sentence_states
    from qeu_utils.analysis.logit_lens import answer_probabilities, chat_prompt
    from qeu_utils.analysis.metrics import alignment_items, style_linkage_items

    def losses(records, what):
        result = heldout_loss(model, tokenizer, records, per_record=True,
                              progress=f"{label} loss {what}")
        return result["per_record"]

    generation = {"max_new_tokens": settings["max_new_tokens"],
                  "batch_size": settings["generation_batch_size"]}
    probes = _read_lines(data / "probes.jsonl")
    forgetting = read_jsonl(data / "forgetting.jsonl")
    items = json.loads((data / "items.json").read_text(encoding="utf-8"))
    lens = json.loads((data / "lens.json").read_text(encoding="utf-8"))
    raw = {
        "dolly_loss": losses(dolly_eval(data, settings), "dolly"),
        "init_eval_loss": losses(read_jsonl(data / "init" / "eval.jsonl"), "init eval"),
        "forgetting_loss": losses(forgetting, "forgetting"),
        "forgetting_answers": generate_answers(model, tokenizer, forgetting, **generation,
                                               progress=f"{label} forgetting"),
        "probe_answers": generate_answers(model, tokenizer, [p["record"] for p in probes],
                                          **generation, progress=f"{label} probes")
        if probes else [],
    }
    for part in ("seen", "unseen"):
        kanji = items[f"kanji_{part}"]
        if len(kanji) < 2:
            raw[f"kanji_{part}"] = None
            continue
        ja = pooled_states(model, tokenizer, [k[0] for k in kanji])
        hans = pooled_states(model, tokenizer, [k[1] for k in kanji])
        aligned = alignment_items(ja, hans, center=True)
        raw[f"kanji_{part}"] = {"gap": _rounded(aligned["gap"]),
                                "rank": aligned["rank"].tolist()}
    sentences = items["sentences"]
    if len(sentences) >= 1:
        states = [sentence_states(model, tokenizer, [s[i] for s in sentences])
                  for i in range(4)]
        link = style_linkage_items(*states, center=True)
        raw["style"] = {k: _rounded(link[k]) for k in ("plain_zh_gap", "polite_en_gap")}
    for part in ("seen", "unseen"):
        prompts = lens[part]
        raw[f"lens_{part}"] = _rounded(answer_probabilities(
            model, tokenizer, [chat_prompt(tokenizer, p["prompt"]) for p in prompts],
            [p["answer"] for p in prompts])) if prompts else None
    return raw


def _rounded(array) -> list:
    """A ``[layers, items]`` array as nested lists with 6 significant digits (raw files stay
    small; the statistics do not need more)."""
    return [[float(f"{x:.6g}") for x in row] for row in array.tolist()]
