"""The knowledge gate: which items could a base model ever transfer?

Before any claim that the curriculum lets a model recognise Japanese through its Chinese, the
gate measures, item by item, what the *base* model already knows, with teacher forcing (no
generation): the log-probability of the right answer's tokens after a prompt, and its margin
over copying the question and over a distractor of the same kind
(:mod:`qeu_utils.analysis.gate_items`). Each item is scored from a Chinese prompt, a Japanese
prompt and a few-shot prompt.

**Known** (fixed before any result was seen): from a given prompt, an item is known when the
right answer's summed log-probability beats both the copy's and the distractor's, i.e. both
margins are > 0. The strata compare the Chinese and Japanese prompts: ``K`` known from the
Chinese prompt only (the items the curriculum's claim is about), ``both``, ``J`` (Japanese
only) and ``neither``. The primary number is the size of ``K``, with a bootstrap interval
over items.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np

from qeu_utils.analysis.gate_items import (
    PROMPTS,
    TASKS,
    GateItem,
    candidate_text,
    gate_items,
    prompt_parts,
)
from qeu_utils.analysis.gate_report import plot_gate, report_markdown
from qeu_utils.core.atomic import (
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    refuse_to_replace,
)
from qeu_utils.evaluation.generation import index_batches, pad_id

log = logging.getLogger(__name__)

__all__ = [
    "CANDIDATES",
    "STRATA",
    "KNOWN_DEFINITION",
    "encode_group",
    "continuation_logprobs",
    "score_items",
    "is_known",
    "stratum",
    "bootstrap_share",
    "summarize",
    "run_gate",
    "write_gate",
]

CANDIDATES = ("answer", "copy", "distractor")
STRATA = ("K", "both", "J", "neither")
KNOWN_DEFINITION = (
    "An item is *known* from a prompt when the summed log-probability of the right answer's "
    "tokens (closing quote included) is greater than that of the copy (the question itself "
    "given as the answer) and greater than that of the distractor: both margins > 0."
)


def _after(tokenizer, before: str, text: str) -> list[int]:
    """The ids ``text`` adds after ``before``: the tail of the tokenization of the whole, so a
    piece that merges across the seam is tokenized as the model would see it; the text alone
    when the whole does not start with ``before``'s tokens."""
    first = tokenizer(before, add_special_tokens=False)["input_ids"]
    whole = tokenizer(before + text, add_special_tokens=False)["input_ids"]
    if whole[:len(first)] == first and len(whole) > len(first):
        return whole[len(first):]
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_group(tokenizer, head: str, tails: list[str], candidates: list[list[str]]):
    """``(head_ids, tail_ids, candidate_ids)``: the head with the tokenizer's special tokens (a
    BOS where it adds one), each tail after the head, each candidate after head + tail."""
    if len(tails) != len(candidates):
        raise ValueError(f"{len(tails)} tails but {len(candidates)} candidate lists")
    head_ids = tokenizer(head)["input_ids"]
    if not head_ids:
        raise ValueError(f"the prompt head {head!r} encodes to no tokens")
    tail_ids = [_after(tokenizer, head, tail) for tail in tails]
    cand_ids = [[_after(tokenizer, head + tail, c) for c in cands]
                for tail, cands in zip(tails, candidates, strict=True)]
    for tail, ids, cands in zip(tails, tail_ids, cand_ids, strict=True):
        if not ids or not all(cands):
            raise ValueError(f"a prompt tail or candidate of {tail!r} encodes to no tokens")
    return head_ids, tail_ids, cand_ids


def _cache_name(model) -> str:
    # transformers 5.25 renamed ``past_key_values`` to ``cache`` (the old name warns on every
    # call); the earlier 5.x releases the requirements allow know only the old name.
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def continuation_logprobs(model, tokenizer, head: str, tails: list[str],
                          candidates: list[list[str]], *, batch_size: int = 16) -> np.ndarray:
    """``[len(tails), n_candidates, 2]``: the summed log-probability (nats) of each candidate's
    tokens after ``head + tail``, and its number of tokens.

    The head (shared by the whole group: a task's frame, or the few-shot demonstrations) runs
    once and its key/value cache is copied into every batch; each tail runs once and its
    cache serves every candidate. On 2 CPU cores that is most of the cost saved: the shared
    parts are longer than the candidates. Tails are left-padded with explicit position ids;
    each candidate column (all answers, all copies, ...) runs on its own, right-padded to its
    own width (a copy in katakana is three times as many byte tokens as its hanzi answer), and
    a causal model never looks at a later pad. Every query sees the head, so no attention row
    is fully masked."""
    import torch

    head_ids, tail_ids, cand_ids = encode_group(tokenizer, head, tails, candidates)
    k = len(cand_ids[0])
    if any(len(c) != k for c in cand_ids):
        raise ValueError("every item of a group needs the same number of candidates")
    device, pad, name = model.device, pad_id(tokenizer), _cache_name(model)
    result = np.zeros((len(tails), k, 2))
    order = sorted(range(len(tails)), key=lambda i: -len(tail_ids[i]))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            prefix = getattr(model(input_ids=torch.tensor([head_ids], device=device),
                                   use_cache=True, logits_to_keep=1), name)
            for batch in index_batches(order, batch_size):
                b, width = len(batch), max(len(tail_ids[i]) for i in batch)
                ids = torch.full((b, width), pad, dtype=torch.long)
                mask = torch.zeros((b, width), dtype=torch.long)
                for row, i in enumerate(batch):
                    ids[row, width - len(tail_ids[i]):] = torch.tensor(tail_ids[i])
                    mask[row, width - len(tail_ids[i]):] = 1
                attn = torch.cat([torch.ones((b, len(head_ids)), dtype=torch.long), mask], 1)
                positions = len(head_ids) + (mask.cumsum(1) - 1).clamp(min=0)
                cache = copy.deepcopy(prefix)
                cache.batch_repeat_interleave(b)
                out = model(input_ids=ids.to(device), attention_mask=attn.to(device),
                            position_ids=positions.to(device), use_cache=True,
                            logits_to_keep=1, **{name: cache})
                first = out.logits[:, -1].float().log_softmax(-1)
                start = (len(head_ids) + mask.sum(1)).to(device)
                for j in range(k):
                    # The last column may extend the tail's cache itself; the others a copy.
                    column_cache = cache if j == k - 1 else copy.deepcopy(cache)
                    sums, counts = _column_logprobs(
                        model, [cand_ids[i][j] for i in batch], first, column_cache,
                        attn.to(device), start, pad, name)
                    result[batch, j, 0] = sums
                    result[batch, j, 1] = counts
    finally:
        model.train(was_training)
    return result


def _column_logprobs(model, cands: list[list[int]], first, cache, attn, start, pad: int,
                     name: str):
    """Summed log-probabilities and lengths of one candidate per row, after the rows' tails
    (``first``: the tails' next-token log-probabilities, ``cache`` their keys and values)."""
    import torch

    device = first.device
    width = max(len(c) for c in cands)
    ids = torch.full((len(cands), width), pad, dtype=torch.long)
    mask = torch.zeros((len(cands), width), dtype=torch.long)
    for row, c in enumerate(cands):
        ids[row, :len(c)] = torch.tensor(c)
        mask[row, :len(c)] = 1
    ids, mask = ids.to(device), mask.to(device)
    token_lp = torch.zeros(ids.shape, device=device)
    token_lp[:, 0] = first.gather(1, ids[:, :1])[:, 0]
    if width > 1:
        fed = width - 1  # the last token is only predicted, never fed
        logits = model(input_ids=ids[:, :fed], attention_mask=torch.cat([attn, mask[:, :fed]], 1),
                       position_ids=start[:, None] + torch.arange(fed, device=device)[None],
                       use_cache=True, **{name: cache}).logits.float()
        token_lp[:, 1:] = (logits.gather(-1, ids[:, 1:, None])[..., 0]
                           - torch.logsumexp(logits, dim=-1))
    return ((token_lp * mask).sum(1).double().cpu().numpy(), mask.sum(1).cpu().numpy())


def is_known(margin_copy: float, margin_distractor: float) -> bool:
    """:data:`KNOWN_DEFINITION`: both margins of the summed log-probability are > 0."""
    return margin_copy > 0 and margin_distractor > 0


def stratum(known_zh: bool, known_ja: bool) -> str:
    """``K`` (Chinese prompt only), ``both``, ``J`` (Japanese prompt only) or ``neither``."""
    if known_zh:
        return "both" if known_ja else "K"
    return "J" if known_ja else "neither"


def score_items(model, tokenizer, items: list[GateItem], demos: dict, *,
                batch_size: int = 16) -> list[dict]:
    """One row per item: the item, then per prompt the log-probability, token count and
    per-token mean of each candidate, the margins (summed and per-token) and ``known``, and
    the item's stratum."""
    if not items:
        raise ValueError("no items to score")
    rows = [item.as_dict() for item in items]
    for task in TASKS:
        idx = [i for i, item in enumerate(items) if item.task == task]
        if not idx:
            continue
        for prompt in PROMPTS:
            started = time.perf_counter()
            parts = [prompt_parts(task, prompt, items[i].question, demos.get(task, []))
                     for i in idx]
            cands = [[candidate_text(prompt, f) for f in
                      (items[i].answer, items[i].question, items[i].distractor)] for i in idx]
            scores = continuation_logprobs(model, tokenizer, parts[0][0], [p[1] for p in parts],
                                           cands, batch_size=batch_size)
            for i, score in zip(idx, scores, strict=True):
                rows[i][prompt] = _prompt_entry(score)
            log.info("gate: %s / %s prompt, %d items in %.1f s", task, prompt, len(idx),
                     time.perf_counter() - started)
    for row in rows:
        row["stratum"] = stratum(row["zh"]["known"], row["ja"]["known"])
    return rows


def _prompt_entry(score: np.ndarray) -> dict:
    entry = {}
    for name, (logp, n) in zip(CANDIDATES, score, strict=True):
        entry[name] = {"logp": float(logp), "tokens": int(n), "mean": float(logp / n)}
    for other in ("copy", "distractor"):
        entry[f"margin_{other}"] = entry["answer"]["logp"] - entry[other]["logp"]
        entry[f"mean_margin_{other}"] = entry["answer"]["mean"] - entry[other]["mean"]
    entry["known"] = is_known(entry["margin_copy"], entry["margin_distractor"])
    return entry


def bootstrap_share(values, *, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean of ``values`` (0/1 flags, or a
    difference of flags), resampling items."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("no values to bootstrap")
    idx = np.random.default_rng(seed).integers(0, values.size, size=(n_boot, values.size))
    means = values[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _counts(rows: list[dict]) -> dict:
    """Strata and known counts; also how many answers beat each rival on its own, which says
    why items are not known (a model that copies loses to the copy, one that guesses beats
    the distractor about half the time)."""
    strata = Counter(row["stratum"] for row in rows)
    known = {p: sum(row[p]["known"] for row in rows) for p in PROMPTS}
    beats = {rival: {p: sum(row[p][f"margin_{rival}"] > 0 for row in rows) for p in PROMPTS}
             for rival in ("copy", "distractor")}
    return {"items": len(rows), **{s: strata[s] for s in STRATA},
            "known": known, "known_share": {p: known[p] / len(rows) for p in PROMPTS},
            "beats_copy": beats["copy"], "beats_distractor": beats["distractor"]}


def summarize(rows: list[dict], *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Counts per stratum (all items, per kind, per task), known rates per prompt, and the
    primary number: the size of ``K`` (count and share) with a bootstrap 95% interval. Also
    ``K − J`` (how much more the Chinese prompt alone knows than the Japanese alone) and the
    size of K if the two prompts' verdicts were independent, to read K against."""
    if not rows:
        raise ValueError("no scored items to summarize")
    n = len(rows)
    in_k = [row["stratum"] == "K" for row in rows]
    in_j = [row["stratum"] == "J" for row in rows]
    lo, hi = bootstrap_share(in_k, n_boot=n_boot, seed=seed)
    d_lo, d_hi = bootstrap_share(np.subtract(in_k, in_j, dtype=float), n_boot=n_boot, seed=seed)
    overall = _counts(rows)
    share = overall["known_share"]
    return {
        "n_items": n,
        "definition_of_known": KNOWN_DEFINITION,
        "primary": {"K_count": sum(in_k), "K_share": sum(in_k) / n, "K_share_ci95": [lo, hi],
                    "K_count_ci95": [lo * n, hi * n], "n_boot": n_boot},
        "secondary": {"K_minus_J_share": (sum(in_k) - sum(in_j)) / n,
                      "K_minus_J_ci95": [d_lo, d_hi],
                      "K_share_if_independent": share["zh"] * (1 - share["ja"])},
        "all": overall,
        "by_kind": {kind: _counts([r for r in rows if r["kind"] == kind])
                    for kind in sorted({r["kind"] for r in rows})},
        "by_task": {task: _counts([r for r in rows if r["task"] == task])
                    for task in TASKS if any(r["task"] == task for r in rows)},
    }


def run_gate(model: str, out, *, n_kanji: int | None = 300, n_countries: int | None = 100,
             n_loanwords: int | None = 100, seed: int = 0, batch_size: int = 16,
             n_boot: int = 2000, overwrite: bool = False, command: str | None = None) -> dict:
    """Score a base model (alias, Hub id or directory) on the gate's items and write
    ``items.jsonl``, ``summary.json``, ``report.md`` and ``gate.png`` to ``out`` (all at once:
    a failure leaves whatever was there before). Returns the summary."""
    import torch

    from qeu_utils.model.models import load_model

    out = refuse_to_replace(out, overwrite)
    items, demos = gate_items(n_kanji, n_countries, n_loanwords, seed)
    log.info("gate: %d items (%s)", len(items),
             ", ".join(f"{t} {c}" for t, c in Counter(i.task for i in items).items()))
    started = time.perf_counter()
    loaded, tokenizer = load_model(model)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    rows = score_items(loaded, tokenizer, items, demos, batch_size=batch_size)
    score_s = time.perf_counter() - started
    summary = {"model": model, "command": command,
               "settings": {"n_kanji": n_kanji, "n_countries": n_countries,
                            "n_loanwords": n_loanwords, "seed": seed, "batch_size": batch_size},
               **summarize(rows, n_boot=n_boot, seed=seed),
               "demos": {task: [list(d) for d in pairs] for task, pairs in demos.items()},
               "timing": {"load_s": round(load_s, 1), "score_s": round(score_s, 1),
                          "device": str(loaded.device), "torch_threads": torch.get_num_threads(),
                          "dtype": str(loaded.dtype).removeprefix("torch.")}}
    write_gate(out, rows, summary)
    log.info("gate: K = %d of %d items, written to %s", summary["primary"]["K_count"],
             len(rows), out)
    return summary


def write_gate(out, rows: list[dict], summary: dict) -> None:
    """``items.jsonl``, ``summary.json``, ``gate.png`` and ``report.md`` in ``out``, replaced
    all at once. Also re-renders a stored result after a change to the report: pass its rows
    and its summary updated with :func:`summarize` of the rows."""
    with atomic_directory(out) as tmp:
        atomic_write_text(Path(tmp) / "items.jsonl",
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        atomic_write_json(Path(tmp) / "summary.json", summary)
        plot_gate(rows, summary, Path(tmp) / "gate.png")
        atomic_write_text(Path(tmp) / "report.md", report_markdown(summary, rows))
