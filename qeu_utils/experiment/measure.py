"""What the run phase records of one model, raw. Nothing here needs the text tools; scoring the
answers is left to the score phase.

Per probe (``items``, one row per probe that is measured): the teacher-forced margin of the
right changed form over the copy of the question (the recognition claim's primary endpoint, on
the probes prepare marked: the recognition kinds' probes whose answer differs from the
question, in the knowledge gate when there is one), and for the
generated sample the greedy answer, allowed to finish (an end token or the template's stop
string, within twice its kind's longest reference answer, at most ``max_new_tokens``) and
whether it did.

Per cell (``raw``): the rule's margins (plain → Chinese over English, polite → English over
Chinese, one instruction that names no language); per-record losses on the init eval split and
the English forgetting questions (and held-out Dolly after stage 2); per-item kanji alignment
(seen and unseen) with retrieval@1 against orthographic foils at every layer; the per-sentence
style link; the logit lens's p(answer) at every layer, on single-token answers only.
"""

from __future__ import annotations

import json
from pathlib import Path

from qeu_utils.core.records import read_jsonl
from qeu_utils.evaluation.generation import generate_answers
from qeu_utils.evaluation.heldout import heldout_loss
from qeu_utils.experiment.layout import _read_lines, dolly_eval
from qeu_utils.experiment.margin import margins
from qeu_utils.experiment.questions import RECOGNITION_KINDS


def measure(model, tokenizer, data: Path, settings: dict, label: str = "", *,
            generate: bool = True, dolly: bool = False) -> tuple[dict, list[dict]]:
    """``(raw, items)`` for one model (see the module docstring). ``generate``: answer the
    generated sample (off for the durability measurement after stage 2); ``dolly``: add the
    held-out Dolly loss."""
    probes = _read_lines(data / "probes.jsonl.gz")
    items = _probe_rows(model, tokenizer, probes, settings, label, generate)
    rule = _read_lines(data / "rule.jsonl")
    raw = {"rule": [round(r["margin"], 4) for r in margins(
        model, tokenizer, [r["record"] for r in rule], [r["rival"] for r in rule],
        batch_size=settings["margin_batch_size"], progress=f"{label} rule")] if rule else []}
    raw.update(_losses(model, tokenizer, data, settings, label, dolly))
    raw.update(_representations(model, tokenizer, data))
    return raw, items


def _probe_rows(model, tokenizer, probes: list[dict], settings: dict, label: str,
                generate: bool) -> list[dict]:
    scored = [i for i, p in enumerate(probes) if p.get(
        "margin", p["changed"] and p["kind"] in RECOGNITION_KINDS)]
    keep = set(scored) | {i for i, p in enumerate(probes) if generate and p["generate"]}
    rows = {i: {"i": i, "kind": probes[i]["kind"], "item": probes[i]["item"],
                "stratum": probes[i]["stratum"], "changed": probes[i]["changed"]}
            for i in keep}
    found = margins(model, tokenizer, [probes[i]["record"] for i in scored],
                    [probes[i]["rival"] for i in scored], batch_size=settings["margin_batch_size"],
                    progress=f"{label} margins")
    for i, m in zip(scored, found, strict=True):
        rows[i].update(margin=round(m["margin"], 4), logp=round(m["logp"], 4),
                       rival_logp=round(m["rival_logp"], 4), tokens=m["tokens"],
                       rival_tokens=m["rival_tokens"])
    sample = [i for i, p in enumerate(probes) if p["generate"]] if generate else []
    for kind in dict.fromkeys(probes[i]["kind"] for i in sample):
        batch = [i for i in sample if probes[i]["kind"] == kind]
        budget = answer_budget(tokenizer, [probes[i]["record"]["output"] for i in batch],
                               settings["max_new_tokens"])
        finished: list[bool] = []
        answers = generate_answers(model, tokenizer, [probes[i]["record"] for i in batch],
                                   max_new_tokens=budget,
                                   batch_size=settings["generation_batch_size"],
                                   progress=f"{label} {kind}", finished=finished)
        for i, answer, done in zip(batch, answers, finished, strict=True):
            rows[i].update(answer=answer, finished=done, budget=budget)
    return [rows[i] for i in sorted(rows)]


def answer_budget(tokenizer, references: list[str], cap: int) -> int:
    """How many tokens a kind's answers may take: twice its longest reference answer and 4
    more (room for an end token, a full stop, a different spelling), at most ``cap``. A
    rambling model stops there; one that answers ends at its end token long before."""
    longest = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)
    return min(cap, 2 * longest + 4)


def _losses(model, tokenizer, data: Path, settings: dict, label: str, dolly: bool) -> dict:
    def losses(records, what):
        result = heldout_loss(model, tokenizer, records, per_record=True,
                              batch_size=settings["margin_batch_size"],
                              progress=f"{label} loss {what}")
        return [{"nll": round(r["nll"], 4), "tokens": r["tokens"]} for r in result["per_record"]]

    raw = {"init_eval_loss": losses(read_jsonl(data / "init" / "eval.jsonl"), "init eval"),
           "forgetting_loss": losses(read_jsonl(data / "forgetting.jsonl"), "forgetting")}
    if dolly:
        raw["dolly_loss"] = losses(dolly_eval(data, settings), "dolly")
    return raw


def _representations(model, tokenizer, data: Path) -> dict:
    # torch-heavy: imported when the run phase measures, not when the experiment is imported
    from qeu_utils.analysis.hidden_states import pooled_states, sentence_states
    from qeu_utils.analysis.logit_lens import answer_probabilities, chat_prompt
    from qeu_utils.analysis.metrics import alignment_items, foil_retrieval, style_linkage_items

    items = json.loads((data / "items.json").read_text(encoding="utf-8"))
    lens = json.loads((data / "lens.json").read_text(encoding="utf-8"))
    raw: dict = {}
    for part in ("seen", "unseen"):
        kanji = items[f"kanji_{part}"]
        if len(kanji) < 2:
            raw[f"kanji_{part}"] = None
            continue
        ja = pooled_states(model, tokenizer, [k[0] for k in kanji])
        hans = pooled_states(model, tokenizer, [k[1] for k in kanji])
        aligned = alignment_items(ja, hans, center=True)
        foils = orthographic_foils(tokenizer, [k[1] for k in kanji])
        raw[f"kanji_{part}"] = {"gap": _rounded(aligned["gap"]),
                                "rank": aligned["rank"].tolist(), "foils": foils,
                                "foil_top1": _rounded(foil_retrieval(ja, hans, foils,
                                                                     center=True))}
    sentences = items["sentences"]
    if sentences:
        states = [sentence_states(model, tokenizer, [s[i] for s in sentences])
                  for i in range(4)]
        link = style_linkage_items(*states, center=True)
        raw["style"] = {k: _rounded(link[k]) for k in ("plain_zh_gap", "polite_en_gap")}
    for part in ("seen", "unseen"):
        # the whole answer token, so only answers that are one token (most kanji in Gemma 3)
        single = [k for k, p in enumerate(lens[part]) if len(tokenizer(
            p["answer"], add_special_tokens=False)["input_ids"]) == 1]
        raw[f"lens_{part}"] = {"items": single, "p_answer": _rounded(answer_probabilities(
            model, tokenizer, [chat_prompt(tokenizer, lens[part][k]["prompt"]) for k in single],
            [lens[part][k]["answer"] for k in single])) if single else None}
    return raw


def orthographic_foils(tokenizer, forms: list[str]) -> list[list[int]]:
    """For each form, the other forms that share its first token or its first two UTF-8 bytes
    (the same 64-code-point block: in Unicode's radical-stroke order, mostly the same
    radical) — what byte- or token-level overlap alone would pull together."""
    lead = [tokenizer(f, add_special_tokens=False)["input_ids"][:1] for f in forms]
    head = [f.encode("utf-8")[:2] for f in forms]
    return [[j for j in range(len(forms)) if j != i and (lead[j] == lead[i] or head[j] == head[i])]
            for i in range(len(forms))]


def _rounded(array) -> list:
    """A ``[layers, items]`` array as nested lists with 6 significant digits (NaN → None), so
    raw files stay small; the statistics do not need more."""
    return [[None if x != x else float(f"{x:.6g}") for x in row] for row in array.tolist()]

