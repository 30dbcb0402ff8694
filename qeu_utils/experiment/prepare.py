"""The prepare phase: everything the runs need written to ``DIR/data`` — the init splits, each
condition's stage-1 records, probes on items no condition trains on (with the knowledge gate's
stratum and the generated sample marked), the rule's probes, seen/unseen kanji and sentences,
logit-lens prompts, forgetting questions and the Dolly parts. The only phase that needs the
text tools (imported inside the functions that use them)."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

from qeu_utils.analysis.items import (
    kanji_forms_in,
    kanji_items,
    seeded_sample,
    sentence_items,
    split_seen,
)
from qeu_utils.builders.common import rng_for
from qeu_utils.builders.dolly import build_dolly
from qeu_utils.builders.mix import build_init, builders
from qeu_utils.core.atomic import atomic_write_json
from qeu_utils.core.records import make_record, read_jsonl, write_jsonl
from qeu_utils.core.resources import dolly_sample_path
from qeu_utils.experiment.controls import asked_form, condition_records
from qeu_utils.experiment.layout import STAGE1_DATA, _read_lines, _write_lines, dolly_eval
from qeu_utils.experiment.questions import (
    FORGETTING,
    GATE_TASKS,
    ITEM_KIND,
    LENS_TEMPLATE,
    PROBE_KINDS,
    RECOGNITION_KINDS,
    RULE_INSTRUCTION,
)
from qeu_utils.experiment.settings import _data_settings, _diff

log = logging.getLogger(__name__)


def _corpus(records: list[dict]) -> str:
    """Every text a training split shows, one string to search items in."""
    return "\n".join(f"{r['instruction']}\n{r['input']}\n{r['output']}" for r in records)


def _forms_of(category: str, group, tools: dict) -> tuple[str, ...]:
    """The strings that name a group's item, to look for in the training texts."""
    key = group.key
    if category == "kanji":
        v = tools["variants"](key)
        return tuple(dict.fromkeys([v.japanese, v.simplified, v.traditional, *v.candidates]))
    if category == "country":
        c = tools["country"](key)
        return (c.ja, c.en, c.zh_hans, c.zh_hant)
    if category == "katakana":
        return (key.split(":", 1)[1],)
    if category == "style":
        record = group.records[0]  # plain_to_zh: input plain, output zh
        rows = {r["task"]: r for r in group.records}
        return (record["input"], rows["polite_to_en"]["input"], rows["plain_to_zh"]["output"],
                rows["polite_to_en"]["output"])
    return (key,)


def unseen_probes(train: list[dict], other_training: list[dict], per_kind: int,
                  seed: int) -> tuple[list[dict], dict]:
    """Probe records on items no condition trained on, ``per_kind`` (at most) per kind.

    Candidates are the builders' full pools (``--size all``). An item is out when any record
    of its group is in ``train`` (the initialization split B and C train on), or when any of
    its names (a kanji's three forms, a country's four names, the loanword, a sentence in any
    of its four languages) occurs anywhere in the texts of ``train`` or ``other_training``
    (stage 2's Dolly data, which every condition sees). Kanji inside other categories'
    sentences are the exception: the Japanese form of a common kanji is in half the texts; the
    item is the *mapping* to Chinese, so a kanji is out only when its Chinese forms appear.
    Sampling is seeded; each probe is ``{"kind", "item", "expected", "record"}``.
    """
    from qeu_utils.text.countries import country
    from qeu_utils.text.kanji import variants

    tools = {"variants": variants, "country": country}
    corpus = _corpus(train + other_training)
    taught_kanji = kanji_forms_in(train)
    train_ids = {r["id"] for r in train}
    available = builders()
    pools: dict[str, list[dict]] = defaultdict(list)
    for category in sorted({c for c, _ in PROBE_KINDS.values()}):
        for group in available[category](seed):
            if any(r["id"] in train_ids for r in group.records):
                continue
            if category == "katakana" and not group.key.startswith("word:"):
                continue
            forms = _forms_of(category, group, tools)
            if category == "kanji":
                if any(f in taught_kanji for f in forms):
                    continue
                chinese = [f for f in forms if f != group.key]
                if any(f in corpus for f in chinese):
                    continue
            elif any(f in corpus for f in forms):
                continue
            for record in group.records:
                for kind, (cat, task) in PROBE_KINDS.items():
                    if cat == category and record["task"] == task:
                        pools[kind].append({"kind": kind, "item": group.key,
                                            "expected": _expected_forms(record),
                                            "record": record})
    probes = []
    for kind in PROBE_KINDS:
        pool = pools[kind]
        rng = rng_for(seed, "probes", kind)
        keep = sorted(rng.sample(range(len(pool)), min(per_kind, len(pool))))
        probes += [pool[i] for i in keep]
    counts = {kind: sum(p["kind"] == kind for p in probes) for kind in PROBE_KINDS}
    return probes, counts


def _expected_forms(record: dict) -> list[str]:
    """The forms a correct short answer contains: each candidate of an ambiguous kanji answer
    (``辨・辯・瓣・弁（…）``), else the answer itself."""
    from qeu_utils.text.kanji import answer_forms

    return answer_forms(record["output"]) if record["category"] == "kanji" else [record["output"]]


def embedding_items(train: list[dict], other_training: list[dict], *, n_kanji: int,
                    n_sentences: int, seed: int) -> dict:
    """Seen and unseen kanji ``(ja, hans, hant)`` (Japanese ≠ Simplified, unambiguous), and
    unseen trilingual sentences ``(plain, polite, zh, en)``.

    Seen: taught as an item in ``train``'s kanji records (:func:`analysis.kanji_forms_in`), at
    most ``n_kanji``. Unseen: not taught, and neither Chinese form anywhere in the training
    texts; a seeded sample of ``n_kanji``. Kanji that are neither (their Chinese form only
    occurs inside a sentence) are left out of both.
    """

    corpus = _corpus(train + other_training)
    seen, rest = split_seen(kanji_items(differ="hans"), kanji_forms_in(train))
    unseen = [k for k in rest if k[1] not in corpus and k[2] not in corpus]
    sentences = [s for s in sentence_items() if not any(x in corpus for x in s)]
    return {"kanji_seen": seeded_sample(seen, n_kanji, seed),
            "kanji_unseen": seeded_sample(unseen, n_kanji, seed),
            "sentences": seeded_sample(sentences, n_sentences, seed)}


def forgetting_records(limit: int | None = None) -> list[dict]:
    return [make_record(category="custom", task="forgetting_en", instruction=q, output=a,
                        lang="en>en", source="project")
            for q, a, _ in FORGETTING[:limit]]


def gate_strata(gate_dir: str | None) -> tuple[dict, dict | None]:
    """``{(gate task, question, answer): stratum}`` and a summary of the knowledge gate's
    result in ``gate_dir`` (``items.jsonl``, ``summary.json``); nothing when there is none."""
    if not gate_dir:
        return {}, None
    rows = _read_lines(Path(gate_dir) / "items.jsonl")
    summary = json.loads((Path(gate_dir) / "summary.json").read_text(encoding="utf-8"))
    strata = {(r["task"], r["question"], r["answer"]): r["stratum"] for r in rows}
    return strata, {"source": str(gate_dir), "model": summary.get("model"),
                    "n_items": summary["n_items"], **{k: summary["primary"][k] for k in
                                                      ("K_count", "K_share", "K_share_ci95")}}


def annotate(probes: list[dict], strata: dict, per_kind: int, seed: int) -> None:
    """Mark each probe: ``changed`` (its answer differs from the question's form), ``rival``
    (the copy of that form, the margin's rival), ``stratum`` (the gate's, for the same pair in
    either direction; None outside the gate), ``margin`` (scored for the recognition
    endpoint: a changed probe of a recognition kind — only the gate's items when there is a
    gate: a random subset of the same pools, each with its stratum, at about half the cost)
    and ``generate`` (in the generated sample: ``per_kind`` probes per kind of item, taken in
    turn from each direction's seeded order)."""
    for probe in probes:
        asked = asked_form(probe["record"])
        probe["changed"] = asked not in probe["expected"]
        probe["rival"] = asked
        task, backwards = GATE_TASKS.get(probe["kind"], (None, False))
        pair = (probe["record"]["output"], asked) if backwards else \
            (asked, probe["record"]["output"])
        probe["stratum"] = strata.get((task, *pair)) if task else None
        probe["margin"] = (probe["changed"] and probe["kind"] in RECOGNITION_KINDS
                           and (probe["stratum"] is not None or not strata))
        probe["generate"] = False
    for item_kind in dict.fromkeys(ITEM_KIND.values()):
        queues = []
        for kind in (k for k in PROBE_KINDS if ITEM_KIND[k] == item_kind):
            queue = [p for p in probes if p["kind"] == kind]
            rng_for(seed, "generate", kind).shuffle(queue)
            queues.append(queue)
        taken = 0
        while taken < per_kind and any(queues):
            for queue in queues:
                if queue and taken < per_kind:
                    queue.pop(0)["generate"] = True
                    taken += 1


def rule_probes(sentences: list) -> list[dict]:
    """The rule's probes on unseen sentences ``(plain, polite, zh, en)``: one instruction that
    names no language (:data:`RULE_INSTRUCTION`); the plain sentence's right answer is its
    Chinese (rival: its English), the polite one's its English (rival: its Chinese)."""
    probes = []
    for plain, polite, zh, en in sentences:
        for register, text, right, rival, lang in (("plain", plain, zh, en, "ja>zh"),
                                                   ("polite", polite, en, zh, "ja>en")):
            probes.append({"register": register, "rival": rival, "record": make_record(
                category="style", task=f"rule_{register}", instruction=RULE_INSTRUCTION,
                input=text, output=right, lang=lang, style=register, source="project")})
    return probes


def prepare(out_dir: str | Path, settings: dict, *, command: str | None = None) -> dict:
    """Write ``DIR/data/``: everything the runs need, as JSON/JSONL. Idempotent: a directory
    already prepared with the same settings is left alone; different settings are an error."""
    data = Path(out_dir) / "data"
    manifest_path = data / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if _data_settings(manifest["settings"]) != _data_settings(settings):
            raise ValueError(f"{data} was prepared with other settings "
                             f"({_diff(manifest['settings'], settings)}); use a new --out")
        log.info(f"data already prepared in {data}")
        return manifest
    data.mkdir(parents=True, exist_ok=True)
    log.info("prepare: building the initialization dataset and the controls")
    seed = settings["data_seed"]
    train, held_out = build_init(size=settings["init_size"], seed=seed)
    write_jsonl(held_out, data / "init" / "eval.jsonl")
    conditions, controls = condition_records(train, seed)
    for condition, records in conditions.items():
        write_jsonl(records, data / STAGE1_DATA[condition] / "train.jsonl")

    log.info("prepare: revising the Dolly data for stage 2")
    source = settings["dolly_source"]
    source = dolly_sample_path() if source == "sample" else source
    build_dolly(source, data / "dolly", parts=4, seed=seed, overwrite=True)
    dolly_train = read_jsonl(data / "dolly" / "part-1-of-4.jsonl")
    other = dolly_train + conditions["C-changed"] + conditions["C-swap"]

    log.info("prepare: probes on unseen items")
    probes, counts = unseen_probes(train, other, settings["probes_per_kind"], seed)
    strata, gate = gate_strata(settings.get("gate"))
    annotate(probes, strata, settings["generate_per_kind"], seed)
    _write_lines(data / "probes.jsonl.gz", probes)
    items = embedding_items(train, other, n_kanji=settings["n_kanji"],
                            n_sentences=settings["n_sentences"], seed=seed)
    atomic_write_json(data / "items.json", items)
    _write_lines(data / "rule.jsonl", rule_probes(items["sentences"]))
    lens = {part: [{"prompt": LENS_TEMPLATE.format(x=k[0]), "answer": k[1]}
                   for k in items[f"kanji_{part}"][:settings["n_lens"]]]
            for part in ("seen", "unseen")}
    atomic_write_json(data / "lens.json", lens)
    write_jsonl(forgetting_records(settings["forgetting"]), data / "forgetting.jsonl")
    atomic_write_json(data / "forgetting_answers.json",
                      [accepted for _, _, accepted in FORGETTING[:settings["forgetting"]]])
    manifest = {
        "settings": settings, "command": command,
        "init": {"train": len(train), "eval": len(held_out)},
        "dolly": {"train": len(dolly_train), "eval": len(dolly_eval(data, settings))},
        "controls": controls, "probes": counts, "gate": gate,
        "probes_changed": sum(p["changed"] for p in probes),
        "probes_margin": sum(p["margin"] for p in probes),
        "probes_generated": sum(p["generate"] for p in probes),
        "probes_in_gate": sum(p["stratum"] is not None for p in probes),
        "items": {"kanji_seen": len(items["kanji_seen"]),
                  "kanji_unseen": len(items["kanji_unseen"]),
                  "sentences": len(items["sentences"]), "lens_seen": len(lens["seen"]),
                  "lens_unseen": len(lens["unseen"])},
    }
    atomic_write_json(manifest_path, manifest)
    log.info(f"prepare: done — {len(probes)} probes ({manifest['probes_changed']} whose answer "
             f"differs from the question, {manifest['probes_margin']} with a margin, "
             f"{manifest['probes_generated']} to generate, "
             f"{manifest['probes_in_gate']} in the gate), {manifest['items']['kanji_seen']} "
             f"seen / {manifest['items']['kanji_unseen']} unseen kanji")
    return manifest
