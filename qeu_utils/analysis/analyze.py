"""``python -m qeu_utils analyze``: the embedding analysis of a base model and its trained
stages, written as ``metrics.json``, ``report.md`` and pictures.

For every model (the base, then each adapter or stage directory): kanji, country-name and
loanword alignment per layer, the style ⇄ language linkage of the trilingual sentences, and a
logit lens on translation prompts (the ``metrics`` and ``logit_lens`` modules). Kanji the
stages were trained on (read from each stage's ``lineage.json`` dataset) are also measured apart
from the rest: a trained pair aligning says little about recognition, an untrained one does.
Cosines are taken after removing
each layer's mean vector (``center=True``): raw hidden states of these models share one large
direction, which pushes every cosine towards 1 and hides the differences.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from qeu_utils.analysis.items import (
    country_items,
    kanji_forms_in,
    kanji_items,
    loanword_items,
    sentence_items,
    split_seen,
)
from qeu_utils.core.atomic import atomic_write_json, atomic_write_text
from qeu_utils.core.records import read_jsonl
from qeu_utils.model.models import load_model
from qeu_utils.training.runs import load_trained

log = logging.getLogger(__name__)


def load_variant(model: str, adapter: str | None):
    """The base model, a qeu_utils training run (its whole lineage), or a plain PEFT adapter."""

    if adapter is None:
        return load_model(model)
    if (Path(adapter) / "lineage.json").is_file():
        return load_trained(adapter)
    return load_model(model, adapter=adapter)


def seen_forms(adapters: list[str]) -> set[str]:
    """Kanji forms taught by the training data of these stage directories (their
    ``lineage.json`` dataset: a build directory's ``train.jsonl`` or a JSONL file); empty when
    none is a qeu_utils run or its data is gone."""

    forms: set[str] = set()
    for adapter in adapters:
        lineage = Path(adapter) / "lineage.json"
        if not lineage.is_file():
            continue
        dataset = Path(json.loads(lineage.read_text(encoding="utf-8")).get("dataset") or "")
        path = dataset / "train.jsonl" if dataset.is_dir() else dataset
        if path.is_file():
            forms |= kanji_forms_in(read_jsonl(path))
    return forms


def analyze_model(model, tokenizer, *, n_kanji: int | None = 150, n_sentences: int | None = 200,
                  n_lens: int = 50, n_words: int | None = None, seed: int = 0,
                  seen: set[str] | None = None, progress=False) -> tuple[dict, dict]:
    """All measurements of one model: ``(metrics, states)``; ``states`` keeps the kanji
    vectors for the pictures. With ``seen`` (kanji forms the model was trained on), the kanji
    alignment is also given for the seen and the unseen kanji apart (``kanji_ja_hans_seen``,
    ``kanji_ja_hans_unseen``; each needs at least 2 items)."""
    from qeu_utils.analysis.hidden_states import pooled_states, sentence_states
    from qeu_utils.analysis.logit_lens import chat_prompt, logit_lens
    from qeu_utils.analysis.metrics import alignment, style_linkage

    kanji = kanji_items(n_kanji, seed)
    ja, hans, hant = (pooled_states(model, tokenizer, [k[i] for k in kanji],
                                    progress=progress and f"kanji {i + 1}/3")
                      for i in range(3))
    countries = country_items(n_words, seed)
    c_ja, c_hans, c_en = (pooled_states(model, tokenizer, [c[i] for c in countries])
                          for i in (0, 1, 3))
    words = loanword_items(n_words, seed)
    w_ja, w_en = (pooled_states(model, tokenizer, [w[i] for w in words]) for i in range(2))
    sentences = sentence_items(n_sentences, seed)
    plain, polite, zh, en = (sentence_states(model, tokenizer, [s[i] for s in sentences])
                             for i in range(4))
    lens_kanji = kanji[:n_lens]
    lens_words = words[:n_lens]
    metrics = {
        "kanji_ja_hans": alignment(ja, hans, center=True),
        "kanji_ja_hant": alignment(ja, hant, center=True),
        "country_ja_hans": alignment(c_ja, c_hans, center=True),
        "country_ja_en": alignment(c_ja, c_en, center=True),
        "loanword_ja_en": alignment(w_ja, w_en, center=True),
        "style": style_linkage(plain, polite, zh, en, center=True),
        "logit_lens_kanji": logit_lens(
            model, tokenizer,
            [chat_prompt(tokenizer, f"「{k[0]}」の簡体字は何ですか？") for k in lens_kanji],
            [k[1] for k in lens_kanji]),
        "logit_lens_loanword": logit_lens(
            model, tokenizer,
            [chat_prompt(tokenizer, f"「{w[0]}」を英語で言うと何ですか？") for w in lens_words],
            [w[1] for w in lens_words]),
        "items": {"kanji": len(kanji), "countries": len(countries), "loanwords": len(words),
                  "sentences": len(sentences), "logit_lens_prompts": len(lens_kanji)},
    }
    if seen:
        import torch

        for part, rows in zip(("seen", "unseen"), split_seen(kanji, seen), strict=True):
            metrics["items"][f"kanji_{part}"] = len(rows)
            if len(rows) >= 2:
                index = torch.tensor([kanji.index(k) for k in rows])
                metrics[f"kanji_ja_hans_{part}"] = alignment(ja[:, index], hans[:, index],
                                                             center=True)
    return metrics, {"kanji": kanji, "ja": ja, "hans": hans, "hant": hant}


def headline(metrics: dict) -> dict:
    """The few numbers a report table shows for one model."""
    def best(rows, key="gap"):
        return max(rows, key=lambda r: r[key])

    kanji = best(metrics["kanji_ja_hans"])
    middle = metrics["style"][len(metrics["style"]) // 2]
    lens = metrics["logit_lens_kanji"]
    peak = max(range(lens["layers"]), key=lambda k: lens["answer_prob"][k])
    return {
        "kanji_gap": kanji["gap"], "kanji_gap_lo": kanji["gap_lo"], "kanji_gap_hi": kanji["gap_hi"],
        "kanji_layer": kanji["layer"], "kanji_top1": kanji["top1"],
        "kanji_best_top1": best(metrics["kanji_ja_hans"], "top1")["top1"],
        "kanji_hant_gap": best(metrics["kanji_ja_hant"])["gap"],
        "country_hans_gap": best(metrics["country_ja_hans"])["gap"],
        "country_en_gap": best(metrics["country_ja_en"])["gap"],
        "loanword_en_gap": best(metrics["loanword_ja_en"])["gap"],
        "style_layer": middle["layer"],
        "plain_zh_gap": middle["plain_zh_gap"], "plain_zh_gap_lo": middle["plain_zh_gap_lo"],
        "plain_zh_gap_hi": middle["plain_zh_gap_hi"],
        "polite_en_gap": middle["polite_en_gap"], "polite_en_gap_lo": middle["polite_en_gap_lo"],
        "polite_en_gap_hi": middle["polite_en_gap_hi"],
        "lens_answer_prob_last": lens["answer_prob"][-1], "lens_answer_peak_layer": peak,
        "lens_mass_en_last": lens["mass_en"][-1], "lens_mass_zh_last": lens["mass_zh"][-1],
        "lens_mass_ja_last": lens["mass_ja"][-1],
        # Seen / unseen kanji at the layer where all kanji align best (None: not measured).
        **{f"kanji_gap_{part}": (metrics[f"kanji_ja_hans_{part}"][kanji["layer"]]["gap"]
                                 if f"kanji_ja_hans_{part}" in metrics else None)
           for part in ("seen", "unseen")},
    }


def analyze(model: str, adapters: list[str], out_dir: str | Path, *, labels: list[str] | None
            = None, n_kanji: int | None = 150, n_sentences: int | None = 200, n_lens: int = 50,
            n_words: int | None = None, seed: int = 0) -> dict:
    """Analyze the base model and each adapter; write metrics, report and pictures.
    ``n_words``: a seeded sample of that many country names and loanwords (None: all)."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = labels or ["base"] + [Path(a).name for a in adapters]
    if len(labels) != len(adapters) + 1:
        raise ValueError(f"{len(labels)} labels for {len(adapters) + 1} models (base + adapters)")
    results, pictures = {}, {}
    seen = seen_forms(adapters)
    pairs = list(zip(labels, [None, *adapters], strict=True))
    for k, (label, adapter) in enumerate(pairs, 1):
        # a line per model, not an outer bar: nested bars garble a notebook's output
        log.info("analyzing %s (%d/%d)", label, k, len(pairs))
        lm, tokenizer = load_variant(model, adapter)
        results[label], pictures[label] = analyze_model(
            lm, tokenizer, n_kanji=n_kanji, n_sentences=n_sentences, n_lens=n_lens,
            n_words=n_words, seed=seed, seen=seen, progress=True)
        del lm
    summary = {label: headline(m) for label, m in results.items()}
    atomic_write_json(out / "metrics.json", {"model": model, "adapters": adapters,
                                             "summary": summary, "per_layer": results})
    _pictures(results, pictures, out)
    atomic_write_text(out / "report.md", report(model, summary))
    return {"summary": summary, "per_layer": results}


def _pictures(results: dict, pictures: dict, out: Path) -> None:
    from qeu_utils.analysis.plots import (
        plot_layer_curves,
        plot_logit_lens,
        plot_projection,
        plot_similarity_heatmap,
    )

    plot_layer_curves({k: m["kanji_ja_hans"] for k, m in results.items()}, "gap",
                      out / "kanji_gap_by_layer.png",
                      "漢字：日本の字体 ⇄ 簡体字（一致 − ランダム）", "cosine gap")
    plot_layer_curves({k: m["kanji_ja_hans"] for k, m in results.items()}, "top1",
                      out / "kanji_top1_by_layer.png", "漢字：日本の字体から簡体字を引く（top-1）",
                      "top-1")
    plot_layer_curves({k: m["style"] for k, m in results.items()}, "plain_zh_gap",
                      out / "style_plain_zh_gap.png",
                      "常体は中国語に近いか：cos(常体, 中) − cos(敬体, 中)", "gap")
    plot_layer_curves({k: m["style"] for k, m in results.items()}, "polite_en_gap",
                      out / "style_polite_en_gap.png",
                      "敬体は英語に近いか：cos(敬体, 英) − cos(常体, 英)", "gap")
    plot_logit_lens({k: m["logit_lens_kanji"] for k, m in results.items()},
                    out / "logit_lens_kanji.png", "logit lens：「X」の簡体字は？")
    first = next(iter(results))
    layer = max(results[first]["kanji_ja_hans"], key=lambda r: r["gap"])["layer"]
    for label, states in pictures.items():
        slug = "".join(ch if ch.isalnum() else "_" for ch in label)
        kanji = states["kanji"][:20]
        n = len(kanji)
        plot_projection(
            {"日本": states["ja"][layer, :n], "繁体": states["hant"][layer, :n],
             "簡体": states["hans"][layer, :n]},
            {"日本": [k[0] for k in kanji], "繁体": [k[2] for k in kanji],
             "簡体": [k[1] for k in kanji]},
            out / f"kanji_projection_{slug}.png", f"漢字の表現（PCA, 層 {layer}, {label}）")
        plot_similarity_heatmap(
            states["ja"][layer, :15], states["hans"][layer, :15], [k[0] for k in kanji[:15]],
            out / f"kanji_similarity_{slug}.png",
            f"日本の字体 × 簡体字（層 {layer}, {label}、中心化）",
            col_labels=[k[1] for k in kanji[:15]],
            center=(states["ja"][layer].mean(dim=0) + states["hans"][layer].mean(dim=0)) / 2)


def _maybe(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4f}"


def _interval(h: dict, key: str) -> str:
    return f"{h[key]:+.4f} [{h[key + '_lo']:+.4f}, {h[key + '_hi']:+.4f}]"


def report(model: str, summary: dict) -> str:
    labels = list(summary)
    rows = [
        ("kanji ja⇄簡 gap (best layer) [95% CI]", lambda h: _interval(h, "kanji_gap")),
        ("kanji best layer", lambda h: str(h["kanji_layer"])),
        ("kanji top-1 at that layer", lambda h: f"{h['kanji_top1']:.3f}"),
        ("kanji best top-1", lambda h: f"{h['kanji_best_top1']:.3f}"),
        ("kanji ja⇄簡 gap, kanji seen in training", lambda h: _maybe(h.get("kanji_gap_seen"))),
        ("kanji ja⇄簡 gap, kanji not seen", lambda h: _maybe(h.get("kanji_gap_unseen"))),
        ("kanji ja⇄繁 gap (best layer)", lambda h: f"{h['kanji_hant_gap']:+.4f}"),
        ("country ja⇄簡 gap", lambda h: f"{h['country_hans_gap']:+.4f}"),
        ("country ja⇄en gap", lambda h: f"{h['country_en_gap']:+.4f}"),
        ("loanword ja⇄en gap", lambda h: f"{h['loanword_en_gap']:+.4f}"),
        ("plain closer to zh (middle layer)", lambda h: _interval(h, "plain_zh_gap")),
        ("polite closer to en (middle layer)", lambda h: _interval(h, "polite_en_gap")),
        ("logit lens p(answer), last layer", lambda h: f"{h['lens_answer_prob_last']:.4f}"),
        ("logit lens peak layer", lambda h: str(h["lens_answer_peak_layer"])),
        ("last-layer mass en / zh / ja",
         lambda h: f"{h['lens_mass_en_last']:.3f} / {h['lens_mass_zh_last']:.3f} / "
                   f"{h['lens_mass_ja_last']:.3f}"),
    ]
    lines = [f"# Embedding analysis of {model}", "",
             "| metric | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    lines += [f"| {name} | " + " | ".join(fmt(summary[k]) for k in labels) + " |"
              for name, fmt in rows]
    lines += ["", *reading(summary)]
    return "\n".join(lines) + "\n"


def reading(summary: dict) -> list[str]:
    """Sentences written from the numbers: what changed from the base model, and whether the
    change is beyond the confidence intervals."""
    labels = list(summary)
    base = summary[labels[0]]
    lines = []
    for key, what in (("plain_zh_gap", "plain Japanese is closer to Chinese than polite is"),
                      ("polite_en_gap", "polite Japanese is closer to English than plain is")):
        holds = base[f"{key}_lo"] > 0
        lines.append(f"- {labels[0]}: {what} — {'yes' if holds else 'not shown'} "
                     f"({_interval(base, key)}).")
    for label in labels[1:]:
        h = summary[label]
        for key, what in (("kanji_gap", "kanji alignment (Japanese ⇄ Simplified)"),
                          ("plain_zh_gap", "the plain ⇄ Chinese link"),
                          ("polite_en_gap", "the polite ⇄ English link")):
            delta = h[key] - base[key]
            separate = h[f"{key}_lo"] > base[f"{key}_hi"] or h[f"{key}_hi"] < base[f"{key}_lo"]
            direction = "rose" if delta > 0 else "fell"
            lines.append(f"- {label}: {what} {direction} by {abs(delta):.4f} "
                         f"({'beyond' if separate else 'within'} the 95% intervals).")
    return lines
