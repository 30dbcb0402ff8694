"""Does the curriculum work? Conditions A / B / C over seeds, probed on items no run trained on.

For each seed, three runs end in a stage-2 model with the **same stage-2 budget, data order and
LoRA initialisation** (TRL seeds the adapter from the config's seed):

- **A** — stage 2 only: a fresh adapter on the base model;
- **B** — stage 1 on the initialization dataset at the recipe's budget, merged into the base,
  then a fresh stage-2 adapter;
- **C** — the control: stage 1 on a *link-broken* copy of the same records (each answer swapped
  with another answer of the same task: same texts, scripts, formats and tokens, but the
  Japanese no longer paired with its Chinese, English or gloss), merged, then stage 2;
- **D** (optional, ``extra_stage2``) — A with extra stage-2 steps worth B's stage-1 tokens.

B − A asks whether stage 1 helps at all; B − C whether it is the *links* that help rather than
more steps on CJK-looking text. The base model is measured too, as the reference for
forgetting and for choosing layers.

Three phases, each a function and a ``--phase`` of ``python -m qeu_utils experiment
curriculum``; the one command runs all of them:

1. :func:`prepare` (needs the text tools: fugashi, OpenCC, Babel, JMdict) writes everything the
   runs need to ``DIR/data/``: the init splits, the link-broken copy, probes on unseen items,
   seen/unseen kanji, sentences, logit-lens prompts, forgetting questions, Dolly parts.
2. :func:`run` (the GPU machine; imports none of the text tools) trains and measures each
   (condition, seed) into ``DIR/runs/<cond>-s<seed>/raw.json``: raw generations, per-item
   losses, alignments and logit-lens probabilities. A finished cell is never rerun; an
   interrupted one resumes from its last checkpoint.
3. :func:`score` scores the raw answers (exact match, a softer match, style compliance),
   computes paired differences with 95% intervals and writes ``metrics.json``, ``report.md``
   and plots.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

from qeu_utils.core.atomic import atomic_write_json, atomic_write_text

CONDITIONS = ("A", "B", "C")
OPTIONAL_CONDITIONS = ("D",)
PHASES = ("prepare", "run", "score")
# Text tools the run phase must never need: the GPU machine does not have them.
TEXT_TOOL_MODULES = ("fugashi", "unidic_lite", "unidic", "opencc", "babel", "kanji_lists",
                     "jamdict", "jamdict_data")

# Probe kind → (category, task) of the builder records it is drawn from.
PROBE_KINDS = {
    "kanji_ja_to_hans": ("kanji", "ja_to_hans"),
    "kanji_ja_to_hant": ("kanji", "ja_to_hant"),
    "kanji_hans_to_ja": ("kanji", "hans_to_ja"),
    "kanji_hant_to_ja": ("kanji", "hant_to_ja"),
    "country_ja_to_en": ("country", "ja_to_en"),
    "country_en_to_ja": ("country", "en_to_ja"),
    "country_ja_to_hans": ("country", "ja_to_hans"),
    "country_hans_to_ja": ("country", "hans_to_ja"),
    "loanword_to_en": ("katakana", "loanword_to_en"),
    "loanword_from_en": ("katakana", "en_to_loanword"),
    "style_plain_to_zh": ("style", "plain_to_zh"),
    "style_polite_to_en": ("style", "polite_to_en"),
    "style_en_to_polite": ("style", "en_to_polite"),
    "style_zh_to_plain": ("style", "zh_to_plain"),
}
LENS_TEMPLATE = "「{x}」の簡体字は何ですか？"

# Forgetting: English questions with one short answer, written for this project; scored on the
# ones the base model answers correctly (the score phase finds which). (question, a full answer
# for the loss, accepted answers).
FORGETTING = [
    ("What is the capital of France?", "The capital of France is Paris.", ["Paris"]),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo.", ["Tokyo"]),
    ("What is the capital of Italy?", "The capital of Italy is Rome.", ["Rome"]),
    ("What is the capital of Germany?", "The capital of Germany is Berlin.", ["Berlin"]),
    ("What is the capital of Spain?", "The capital of Spain is Madrid.", ["Madrid"]),
    ("What is the capital of the United Kingdom?", "The capital of the United Kingdom is "
     "London.", ["London"]),
    ("What is the capital of Russia?", "The capital of Russia is Moscow.", ["Moscow"]),
    ("What is the capital of China?", "The capital of China is Beijing.", ["Beijing"]),
    ("What is the capital of Egypt?", "The capital of Egypt is Cairo.", ["Cairo"]),
    ("What is the capital of Canada?", "The capital of Canada is Ottawa.", ["Ottawa"]),
    ("What is the capital of Australia?", "The capital of Australia is Canberra.",
     ["Canberra"]),
    ("What is the capital of Greece?", "The capital of Greece is Athens.", ["Athens"]),
    ("What is the capital of Portugal?", "The capital of Portugal is Lisbon.", ["Lisbon"]),
    ("What is the capital of Ireland?", "The capital of Ireland is Dublin.", ["Dublin"]),
    ("What is the capital of Austria?", "The capital of Austria is Vienna.", ["Vienna"]),
    ("What is the capital of Norway?", "The capital of Norway is Oslo.", ["Oslo"]),
    ("What is the capital of Sweden?", "The capital of Sweden is Stockholm.", ["Stockholm"]),
    ("What is the capital of Poland?", "The capital of Poland is Warsaw.", ["Warsaw"]),
    ("What is the capital of Thailand?", "The capital of Thailand is Bangkok.", ["Bangkok"]),
    ("What is the capital of Kenya?", "The capital of Kenya is Nairobi.", ["Nairobi"]),
    ("What is the capital of Argentina?", "The capital of Argentina is Buenos Aires.",
     ["Buenos Aires"]),
    ("What is the capital of Peru?", "The capital of Peru is Lima.", ["Lima"]),
    ("What is the capital of South Korea?", "The capital of South Korea is Seoul.", ["Seoul"]),
    ("What is the capital of India?", "The capital of India is New Delhi.", ["Delhi"]),
    ("What is the capital of the United States?", "The capital of the United States is "
     "Washington, D.C.", ["Washington"]),
    ("How many days are in a week?", "There are seven days in a week.", ["seven", "7"]),
    ("How many hours are in a day?", "There are 24 hours in a day.", ["24", "twenty-four"]),
    ("How many legs does a spider have?", "A spider has eight legs.", ["eight", "8"]),
    ("How many continents are there?", "There are seven continents.", ["seven", "7"]),
    ("What is 2 + 2?", "2 + 2 is 4.", ["4", "four"]),
    ("What is 10 times 10?", "10 times 10 is 100.", ["100", "one hundred"]),
    ("What color is the sky on a clear day?", "The sky is blue on a clear day.", ["blue"]),
    ("What is the largest planet in the solar system?", "The largest planet in the solar "
     "system is Jupiter.", ["Jupiter"]),
    ("Which planet is known as the Red Planet?", "Mars is known as the Red Planet.", ["Mars"]),
    ("Which planet do we live on?", "We live on Earth.", ["Earth"]),
    ("What gas do plants absorb from the air?", "Plants absorb carbon dioxide from the air.",
     ["carbon dioxide", "CO2"]),
    ("What is the chemical symbol for water?", "The chemical formula of water is H2O.",
     ["H2O"]),
    ("At what temperature in degrees Celsius does water freeze?", "Water freezes at 0 degrees "
     "Celsius.", ["0", "zero"]),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet.",
     ["Shakespeare"]),
    ("What is the opposite of hot?", "The opposite of hot is cold.", ["cold"]),
    ("What do bees make?", "Bees make honey.", ["honey"]),
    ("What is the tallest mountain in the world?", "The tallest mountain in the world is "
     "Mount Everest.", ["Everest"]),
    ("Which ocean is the largest?", "The Pacific Ocean is the largest.", ["Pacific"]),
    ("What language is spoken in Brazil?", "Portuguese is spoken in Brazil.", ["Portuguese"]),
    ("What is the largest animal on Earth?", "The blue whale is the largest animal on Earth.",
     ["whale"]),
    ("What is frozen water called?", "Frozen water is called ice.", ["ice"]),
]


def log(message: str) -> None:
    """One timestamped line, flushed: readable in a ``nohup`` log of a long run."""
    print(f"[experiment {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- settings ----------------------------------------------------------------------------


def resolve_settings(profile: str = "cpu", **overrides) -> dict:
    """The experiment's settings: the profile's (``qeu_utils.training.profiles``), then the non-None
    ``overrides``. Precision: ``fp32`` for the ``cpu`` profile on any machine (so a GPU rerun
    reproduces the CPU recipe), the profile's otherwise."""
    from qeu_utils.training.profiles import load_profile

    p = load_profile(profile)
    e = p["experiment"]
    settings = {
        "profile": p["name"],
        "model": p["model"],
        "seeds": list(e["seeds"]),
        "conditions": list(CONDITIONS) + (["D"] if e.get("extra_stage2") else []),
        "stage1_epochs": e["stage1_epochs"],
        "stage1_max_steps": -1,
        "stage1_learning_rate": p["stage1"]["learning_rate"],
        "stage2_steps": e["stage2_steps"],
        "stage2_learning_rate": e["stage2_learning_rate"],
        "batch_size": p["batch_size"],
        "grad_accum": p["grad_accum"],
        "max_length": p["max_length"],
        "gradient_checkpointing": p["gradient_checkpointing"],
        "qlora": p["qlora"],
        "lora": {"r": p["lora"]["r"], "alpha": p["lora"]["alpha"]},
        "precision": "fp32" if p["name"] == "cpu" else p["precision"],
        "probes_per_kind": e["probes_per_kind"],
        "max_new_tokens": e["max_new_tokens"],
        "n_kanji": p["analysis"]["n_kanji"],
        "n_sentences": p["analysis"]["n_sentences"],
        "n_lens": p["analysis"]["n_lens"],
        "forgetting": len(FORGETTING),
        "init_size": 300,
        "data_seed": 0,
        "dolly_source": "sample" if p["name"] == "cpu" else "kunishou/databricks-dolly-15k-ja",
        "dolly_eval_records": None,  # held-out Dolly loss on the first N records (None: all)
        "generation_batch_size": 32,
        "save_steps": 50,
        "logging_steps": 5,
    }
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in settings:
            raise ValueError(f"unknown experiment setting {key!r}; known: {sorted(settings)}")
        settings[key] = list(value) if isinstance(value, tuple) else value
    unknown = [c for c in settings["conditions"] if c not in CONDITIONS + OPTIONAL_CONDITIONS]
    if unknown or not {"A", "B", "C"} <= set(settings["conditions"]):
        raise ValueError(f"conditions must include A, B and C (optionally D), got "
                         f"{settings['conditions']}")
    if not settings["seeds"]:
        raise ValueError("at least one seed is needed")
    return settings


# --- the link-broken copy ----------------------------------------------------------------


def break_links(records: list[dict], seed: int) -> tuple[list[dict], dict]:
    """The control's stage-1 data: the same records, in the same order, each with the answer
    of another record of the same (category, task).

    Within a task the answers are permuted so that no record keeps its own answer *text*:
    records are grouped by answer, the groups and their members shuffled (seeded), and every
    record takes the answer ``m`` places further round the circle, ``m`` being the largest
    group's size. That is a derangement whenever no answer fills more than half of the task.
    Tasks where every answer is identical cannot be deranged and are kept as they are; a task
    dominated by one answer keeps some — both are counted in the report
    (``{"<category>/<task>": {"records", "kept_own_answer", "note"}}``).
    """
    from qeu_utils.builders.common import rng_for
    from qeu_utils.core.records import make_record

    by_task: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        by_task[(record["category"], record["task"])].append(i)
    outputs = [r["output"] for r in records]
    new = list(outputs)
    report = {}
    for (category, task), indices in by_task.items():
        groups: dict[str, list[int]] = defaultdict(list)
        for i in indices:
            groups[outputs[i]].append(i)
        name = f"{category}/{task}"
        if len(groups) == 1:
            report[name] = {"records": len(indices), "kept_own_answer": len(indices),
                            "note": "a single record, or every answer identical: nothing to swap"}
            continue
        rng = rng_for(seed, "break-links", category, task)
        ordered = list(groups.values())
        rng.shuffle(ordered)
        for group in ordered:
            rng.shuffle(group)
        circle = [i for group in ordered for i in group]
        shift = max(len(g) for g in ordered)
        for pos, i in enumerate(circle):
            new[i] = outputs[circle[(pos + shift) % len(circle)]]
        kept = sum(new[i] == outputs[i] for i in indices)
        report[name] = {"records": len(indices), "kept_own_answer": kept,
                        "note": "" if kept == 0 else "one answer fills more than half the task"}
    broken = []
    for record, output in zip(records, new, strict=True):
        fields = {k: record[k] for k in ("category", "task", "instruction", "input", "lang",
                                         "style", "source")}
        broken.append(make_record(**fields, output=output))
    return broken, report


# --- prepare -----------------------------------------------------------------------------


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
    from qeu_utils.analysis.analysis import kanji_forms_in
    from qeu_utils.builders.common import rng_for
    from qeu_utils.builders.mix import builders
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
    from qeu_utils.analysis import analysis as an

    corpus = _corpus(train + other_training)
    seen, rest = an.split_seen(an.kanji_items(differ="hans"), an.kanji_forms_in(train))
    unseen = [k for k in rest if k[1] not in corpus and k[2] not in corpus]
    sentences = [s for s in an.sentence_items() if not any(x in corpus for x in s)]
    return {"kanji_seen": an._sample(seen, n_kanji, seed),
            "kanji_unseen": an._sample(unseen, n_kanji, seed),
            "sentences": an._sample(sentences, n_sentences, seed)}


def forgetting_records(limit: int | None = None) -> list[dict]:
    from qeu_utils.core.records import make_record

    return [make_record(category="custom", task="forgetting_en", instruction=q, output=a,
                        lang="en>en", source="project")
            for q, a, _ in FORGETTING[:limit]]


def prepare(out_dir: str | Path, settings: dict, *, command: str | None = None) -> dict:
    """Write ``DIR/data/``: everything the runs need, as JSON/JSONL. Idempotent: a directory
    already prepared with the same settings is left alone; different settings are an error."""
    from qeu_utils.builders.dolly import build_dolly
    from qeu_utils.builders.mix import build_init
    from qeu_utils.core.records import read_jsonl, write_jsonl
    from qeu_utils.core.resources import dolly_sample_path

    data = Path(out_dir) / "data"
    manifest_path = data / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if _data_settings(manifest["settings"]) != _data_settings(settings):
            raise ValueError(f"{data} was prepared with other settings "
                             f"({_diff(manifest['settings'], settings)}); use a new --out")
        log(f"data already prepared in {data}")
        return manifest
    data.mkdir(parents=True, exist_ok=True)
    log("prepare: building the initialization dataset")
    seed = settings["data_seed"]
    train, held_out = build_init(size=settings["init_size"], seed=seed)
    write_jsonl(train, data / "init" / "train.jsonl")
    write_jsonl(held_out, data / "init" / "eval.jsonl")
    broken, derangement = break_links(train, seed)
    write_jsonl(broken, data / "init_broken" / "train.jsonl")

    log("prepare: revising the Dolly data for stage 2")
    source = settings["dolly_source"]
    source = dolly_sample_path() if source == "sample" else source
    build_dolly(source, data / "dolly", parts=4, seed=seed, overwrite=True)
    dolly_train = read_jsonl(data / "dolly" / "part-1-of-4.jsonl")

    log("prepare: probes on unseen items")
    probes, counts = unseen_probes(train, dolly_train, settings["probes_per_kind"], seed)
    _write_lines(data / "probes.jsonl", probes)
    items = embedding_items(train, dolly_train, n_kanji=settings["n_kanji"],
                            n_sentences=settings["n_sentences"], seed=seed)
    atomic_write_json(data / "items.json", items)
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
        "derangement": derangement, "probes": counts,
        "items": {"kanji_seen": len(items["kanji_seen"]),
                  "kanji_unseen": len(items["kanji_unseen"]),
                  "sentences": len(items["sentences"]), "lens_seen": len(lens["seen"]),
                  "lens_unseen": len(lens["unseen"])},
    }
    atomic_write_json(manifest_path, manifest)
    log(f"prepare: done — {len(probes)} probes ({counts}), "
        f"{manifest['items']['kanji_seen']} seen / {manifest['items']['kanji_unseen']} unseen "
        "kanji")
    return manifest


_RUN_ONLY = ("conditions", "seeds", "precision", "generation_batch_size", "save_steps",
             "logging_steps", "model", "stage1_epochs", "stage1_max_steps",
             "stage1_learning_rate", "stage2_steps", "stage2_learning_rate", "batch_size",
             "grad_accum", "max_length", "gradient_checkpointing", "qlora", "lora",
             "max_new_tokens", "profile")


def _data_settings(settings: dict) -> dict:
    """The settings the prepared data depend on (the rest only shape the runs). A setting at
    None is left out, so one added later at its default matches a manifest written before."""
    return {k: v for k, v in settings.items() if k not in _RUN_ONLY and v is not None}


def dolly_eval(data: Path, settings: dict) -> list[dict]:
    """The held-out Dolly records every model is measured on: part 4, or its first
    ``dolly_eval_records``."""
    from qeu_utils.core.records import read_jsonl

    return read_jsonl(data / "dolly" / "part-4-of-4.jsonl")[:settings.get("dolly_eval_records")]


def _diff(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in keys)


def _write_lines(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


# --- run ---------------------------------------------------------------------------------


def cell_name(condition: str, seed: int | None) -> str:
    return "base" if condition == "base" else f"{condition}-s{seed}"


def run(out_dir: str | Path, settings: dict | None = None, *,
        command: str | None = None) -> list[str]:
    """Train and measure every (condition, seed) not finished yet, the base model first.
    ``settings`` default to the prepared ones; run-only settings (precision, batch sizes,
    which seeds and conditions) may differ. Returns the cells run now."""
    out = Path(out_dir)
    manifest_path = out / "data" / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{out}: no data/manifest.json — run the prepare phase first")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    settings = {**manifest["settings"], **({k: settings[k] for k in _RUN_ONLY if k in settings}
                                           if settings else {})}
    cells = [("base", None)] + [(c, s) for s in settings["seeds"] for c in settings["conditions"]]
    done_now = []
    for k, (condition, seed) in enumerate(cells, 1):
        name = cell_name(condition, seed)
        cell = out / "runs" / name
        if (cell / "raw.json").is_file():
            log(f"[{k}/{len(cells)}] {name}: finished before, skipped")
            continue
        log(f"[{k}/{len(cells)}] {name}: start")
        _run_cell(out, cell, condition, seed, settings, command)
        done_now.append(name)
        log(f"[{k}/{len(cells)}] {name}: done")
    return done_now


def _timed(cell: Path, key: str, work) -> float:
    """Run ``work`` once per cell and remember its wall time in ``timing.json``: a resumed
    cell keeps the time of the stages finished before it was interrupted."""
    path = cell / "timing.json"
    timing = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if key in timing:
        return timing[key]
    start = time.perf_counter()
    work()
    timing[key] = round(time.perf_counter() - start, 1)
    cell.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, timing)
    return timing[key]


def _train_config(settings: dict, seed: int, **stage) -> dict:
    from qeu_utils.training.train import load_config

    return load_config(
        None, model=settings["model"], batch_size=settings["batch_size"],
        grad_accum=settings["grad_accum"], max_length=settings["max_length"],
        gradient_checkpointing=settings["gradient_checkpointing"], qlora=settings["qlora"],
        lora=dict(settings["lora"]), precision=settings["precision"], evaluate=False,
        save_steps=settings["save_steps"], logging_steps=settings["logging_steps"], seed=seed,
        **stage)


def _train_once(config: dict) -> None:
    """Train unless the stage finished before (``summary.json``); an interrupted stage
    resumes from its last checkpoint (``qeu_utils.training.train.train``)."""
    from qeu_utils.training.train import train

    if (Path(config["output_dir"]) / "summary.json").is_file():
        return
    train(config)


def _run_cell(out: Path, cell: Path, condition: str, seed: int | None, settings: dict,
              command: str | None) -> None:
    data = out / "data"
    cell.mkdir(parents=True, exist_ok=True)
    stage1_data = {"B": data / "init", "C": data / "init_broken"}.get(condition)
    if stage1_data is not None:
        _timed(cell, "stage1_s", lambda: _train_once(_train_config(
            settings, seed, stage=1, dataset=str(stage1_data), output_dir=str(cell / "stage1"),
            epochs=settings["stage1_epochs"], max_steps=settings["stage1_max_steps"],
            learning_rate=settings["stage1_learning_rate"])))
    if condition != "base":
        steps = settings["stage2_steps"]
        if condition == "D":
            steps += extra_stage2_steps(out, settings)
        _timed(cell, "stage2_s", lambda: _train_once(_train_config(
            settings, seed, stage=2, dataset=str(data / "dolly" / "part-1-of-4.jsonl"),
            output_dir=str(cell / "stage2"), epochs=1, max_steps=steps,
            learning_rate=settings["stage2_learning_rate"],
            init_from=str(cell / "stage1") if stage1_data is not None else None,
            chain="merge")))
    start = time.perf_counter()
    model, tokenizer = _load(cell, condition, settings)
    raw = measure(model, tokenizer, data, settings, label=cell.name)
    timing = json.loads((cell / "timing.json").read_text()) if (cell / "timing.json").is_file() \
        else {}
    timing["measure_s"] = round(time.perf_counter() - start, 1)
    timing["total_s"] = round(sum(timing.values()), 1)
    raw.update({"cell": cell.name, "condition": condition, "seed": seed, "timing": timing,
                "command": command, "environment": environment(),
                "precision": settings["precision"],
                "training": {stage: _training_log(cell / stage)
                             for stage in ("stage1", "stage2") if (cell / stage).is_dir()}})
    atomic_write_json(cell / "raw.json", raw)


def _load(cell: Path, condition: str, settings: dict):
    from qeu_utils.model.models import load_model
    from qeu_utils.training.train import load_trained

    dtype = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(settings["precision"])
    if condition == "base":
        return load_model(settings["model"], dtype=dtype)
    return load_trained(cell / "stage2", dtype=dtype)


def _training_log(stage_dir: Path) -> dict:
    path = stage_dir / "trainer_state.json"
    if not path.is_file():
        return {}
    state = json.loads(path.read_text(encoding="utf-8"))
    return {"global_step": state.get("global_step"),
            "loss": [[e["step"], e["loss"]] for e in state.get("log_history", []) if "loss" in e]}


def extra_stage2_steps(out: Path, settings: dict) -> int:
    """D's extra stage-2 steps: B's stage-1 tokens (epochs × every token of the init train
    split, prompt included) divided by the tokens of one stage-2 step."""
    from qeu_utils.core.records import read_jsonl
    from qeu_utils.evaluation.evaluate import encode_for_loss
    from qeu_utils.model.prompting import resolve_template

    tokenizer = _tokenizer(settings["model"])
    template = resolve_template(tokenizer)

    def tokens(records):
        return sum(len(encode_for_loss(r, tokenizer, template)[0]) for r in records)

    init = read_jsonl(out / "data" / "init" / "train.jsonl")
    dolly = read_jsonl(out / "data" / "dolly" / "part-1-of-4.jsonl")
    stage1 = tokens(init) * settings["stage1_epochs"]
    per_step = tokens(dolly) / len(dolly) * settings["batch_size"] * settings["grad_accum"]
    return max(1, round(stage1 / per_step))


def _tokenizer(model: str):
    from transformers import AutoTokenizer

    from qeu_utils.model.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(model))


def environment() -> dict:
    """Versions of the libraries that shape a result, and the device it ran on."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions = {}
    for name in ("torch", "transformers", "peft", "trl", "accelerate", "datasets"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"versions": versions, "device": device, "python": sys.version.split()[0]}


def measure(model, tokenizer, data: Path, settings: dict, label: str = "") -> dict:
    """Everything one model needs measured, raw (nothing that needs the text tools):
    per-record losses on Dolly eval, the init eval split and the forgetting questions; greedy
    answers to the probes and the forgetting questions; per-item kanji alignment (seen and
    unseen), the per-sentence style link, and the logit lens's p(answer), every layer."""
    from qeu_utils.analysis import analysis as an
    from qeu_utils.core.records import read_jsonl
    from qeu_utils.evaluation.evaluate import generate_answers, heldout_loss

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
        ja = an.pooled_states(model, tokenizer, [k[0] for k in kanji])
        hans = an.pooled_states(model, tokenizer, [k[1] for k in kanji])
        aligned = an.alignment_items(ja, hans, center=True)
        raw[f"kanji_{part}"] = {"gap": _rounded(aligned["gap"]),
                                "rank": aligned["rank"].tolist()}
    sentences = items["sentences"]
    if len(sentences) >= 1:
        states = [an.sentence_states(model, tokenizer, [s[i] for s in sentences])
                  for i in range(4)]
        link = an.style_linkage_items(*states, center=True)
        raw["style"] = {k: _rounded(link[k]) for k in ("plain_zh_gap", "polite_en_gap")}
    for part in ("seen", "unseen"):
        prompts = lens[part]
        raw[f"lens_{part}"] = _rounded(an.answer_probabilities(
            model, tokenizer, [an.chat_prompt(tokenizer, p["prompt"]) for p in prompts],
            [p["answer"] for p in prompts])) if prompts else None
    return raw


def _rounded(array) -> list:
    """A ``[layers, items]`` array as nested lists with 6 significant digits (raw files stay
    small; the statistics do not need more)."""
    return [[float(f"{x:.6g}") for x in row] for row in array.tolist()]


# --- score -------------------------------------------------------------------------------

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


def asked_form(record: dict) -> str:
    """The text a probe asks about: its input, or the 「…」 quoted in the instruction."""
    if record["input"]:
        return record["input"]
    quoted = re.search(r"「([^「」]+)」", record["instruction"])
    return quoted.group(1) if quoted else ""


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
    from qeu_utils.evaluation.evaluate import compliant, exact_match

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


def _weighted_mean(values, weights) -> float:
    return sum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights)


def t_interval(diffs: list[float]) -> tuple[float, float] | None:
    """95% Student-t interval of the mean of ``diffs`` (exact quantile, any degrees of
    freedom); None with fewer than 2 values."""
    from scipy.stats import t

    n = len(diffs)
    if n < 2:
        return None
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def paired_bootstrap(diff_by_seed: list[list[float]], weights: list[float], *,
                     n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of a weighted mean of per-item differences (each item's
    difference averaged over seeds), resampling items: the same items were asked of both
    models, so the item-to-item spread is what the interval must cover."""
    import numpy as np

    d = np.asarray(diff_by_seed, dtype=float).mean(axis=0)
    w = np.asarray(weights, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    stats = (d[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1)
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def compare(per_item: dict, first: str, second: str, seeds: list[int]) -> list[dict]:
    """``first − second`` per metric: the mean over seeds of the paired difference, the
    t-interval over seeds (≥ 2 seeds), the paired item bootstrap, and as ``ci_lo``/``ci_hi``
    the wider of the two (both sources of chance must agree before a verdict)."""
    rows = []
    metrics = per_item[(first, seeds[0])]
    for metric in metrics:
        if any(metric not in per_item[(c, s)] for c in (first, second) for s in seeds):
            continue
        weights = per_item[(first, seeds[0])][metric][1]
        by_seed, seed_diffs = [], []
        for s in seeds:
            a, b = per_item[(first, s)][metric][0], per_item[(second, s)][metric][0]
            by_seed.append([x - y for x, y in zip(a, b, strict=True)])
            seed_diffs.append(_weighted_mean(a, weights) - _weighted_mean(b, weights))
        difference = sum(seed_diffs) / len(seed_diffs)
        t_ci = t_interval(seed_diffs)
        boot = paired_bootstrap(by_seed, weights)
        lo = min(boot[0], t_ci[0]) if t_ci else boot[0]
        hi = max(boot[1], t_ci[1]) if t_ci else boot[1]
        better = METRICS.get(metric, ("higher",))[0]
        if lo <= 0 <= hi:
            verdict = "no clear difference"
        elif (difference > 0) == (better == "higher"):
            verdict = f"{first} better"
        else:
            verdict = f"{first} worse"
        rows.append({"metric": metric, "difference": difference, "ci_lo": lo, "ci_hi": hi,
                     "verdict": verdict, "t_ci": list(t_ci) if t_ci else None,
                     "bootstrap_ci": list(boot), "n_items": len(weights),
                     "n_seeds": len(seeds), "better": better})
    return rows


def _choose_layers(base: dict) -> dict:
    """Layers are chosen on the base model, never on a trained one (no selection in favour of
    a condition): the kanji layer where the base aligns unseen kanji best, the middle layer for
    the style link (as ``analyze``), the last layer for the logit lens."""
    kanji = base.get("kanji_unseen") or base.get("kanji_seen")
    n_layers = len(kanji["gap"]) if kanji else len(base["style"]["plain_zh_gap"])
    best = max(range(n_layers), key=lambda k: sum(kanji["gap"][k])) if kanji else n_layers - 1
    return {"kanji": best, "style": n_layers // 2, "lens": n_layers - 1}


def score(out_dir: str | Path, *, command: str | None = None) -> dict:
    """Score every finished cell; write ``metrics.json``, ``report.md`` and the plots."""
    out = Path(out_dir)
    data_dir = out / "data"
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    settings = manifest["settings"]
    raws = {}
    for path in sorted((out / "runs").glob("*/raw.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        raws[(raw["condition"], raw["seed"])] = raw
    if ("base", None) not in raws:
        raise FileNotFoundError(f"{out}/runs/base/raw.json is missing: run the run phase first")
    conditions = [c for c in settings["conditions"] if any(k[0] == c for k in raws)]
    seeds = [s for s in settings["seeds"] if all((c, s) in raws for c in ("A", "B", "C"))]
    if not seeds:
        raise FileNotFoundError(f"{out}/runs: no seed has A, B and C finished yet")
    conditions = [c for c in conditions if all((c, s) in raws for s in seeds)]
    base = raws[("base", None)]
    accepted = json.loads((data_dir / "forgetting_answers.json").read_text(encoding="utf-8"))
    data = {
        "probes": _read_lines(data_dir / "probes.jsonl"),
        "forgetting_answers": accepted,
        "forgetting_keep": [i for i, a in enumerate(base["forgetting_answers"])
                            if answers_correctly(a, accepted[i])],
    }
    layers = _choose_layers(base)
    cells = [("base", None)] + [(c, s) for c in conditions for s in seeds]
    per_item = {key: _per_item(raws[key], data, layers) for key in cells}
    metrics = list(per_item[("base", None)])
    result = {
        "model": settings["model"], "profile": settings["profile"], "seeds": seeds,
        "stage1_epochs": settings["stage1_epochs"], "stage2_steps": settings["stage2_steps"],
        "settings": settings, "probes": manifest["probes"], "items": manifest["items"],
        "forgetting_questions": {"asked": len(accepted),
                                 "base_correct": len(data["forgetting_keep"])},
        "derangement": manifest["derangement"], "layers": layers,
        "metric_definitions": {m: {"better": METRICS[m][0], "claim": METRICS[m][1],
                                   "what": METRICS[m][2]} for m in METRICS},
        "base": {m: _weighted_mean(*per_item[("base", None)][m]) for m in metrics},
        "conditions": {c: {m: [_weighted_mean(*per_item[(c, s)][m]) for s in seeds]
                           for m in metrics if m in per_item[(c, seeds[0])]}
                       for c in conditions},
        "comparisons": {f"B-{x}": compare(per_item, "B", x, seeds)
                        for x in conditions if x != "B"},
        "wall_time_s": {cell_name(*k): raws[k]["timing"] for k in cells},
        "environment": base["environment"],
        "command": manifest.get("command"),
        "commands": {"prepare": manifest.get("command"),
                     "run": sorted({r["command"] for r in raws.values() if r.get("command")}),
                     "score": command},
        "training": {cell_name(*k): raws[k]["training"] for k in cells if k[0] != "base"},
    }
    atomic_write_json(out / "metrics.json", result)
    atomic_write_text(out / "report.md", report(result))
    plot(result, out)
    log(f"score: {len(seeds)} seed(s), conditions {', '.join(conditions)} → "
        f"{out / 'metrics.json'}, {out / 'report.md'}")
    return result


# --- report and plots --------------------------------------------------------------------


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


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


def plot(result: dict, out: Path) -> None:
    """``metrics_by_condition.png`` (each metric: base line, per-condition mean and seeds),
    ``differences.png`` (B − A and B − C with their intervals) and ``stage1_curves.png``."""
    from qeu_utils.core.plotting import pyplot, save_png

    plt = pyplot()
    metrics = [m for m in METRICS if m in result["base"]]
    cols = 4
    nrows = math.ceil(len(metrics) / cols)
    conditions = list(result["conditions"])
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.5 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        ax.axhline(result["base"][metric], color="gray", linestyle="--", linewidth=0.8,
                   label="base")
        for k, c in enumerate(conditions):
            values = result["conditions"][c].get(metric, [])
            if values:
                ax.scatter([k] * len(values), values, s=10, color=f"C{k}", alpha=0.6)
                ax.scatter([k], [_mean(values)], s=60, marker="_", color=f"C{k}")
        ax.set_xticks(range(len(conditions)), conditions)
        ax.set_title(metric, fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(f"{result['model']}: per condition (dots: seeds; dashes: mean; gray: base)")
    fig.tight_layout()
    save_png(fig, out / "metrics_by_condition.png", dpi=100)
    plt.close(fig)

    comps = result["comparisons"]
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.3 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for k, comp in enumerate(comps.values()):
            row = next((r for r in comp if r["metric"] == metric), None)
            if row is None:
                continue
            ax.errorbar([k], [row["difference"]],
                        yerr=[[row["difference"] - row["ci_lo"]],
                              [row["ci_hi"] - row["difference"]]],
                        fmt="o", color=f"C{k}", capsize=3)
        ax.axhline(0, color="gray", linewidth=0.8)
        ax.set_xticks(range(len(comps)), list(comps))
        better = METRICS[metric][0]
        ax.set_title(f"{metric} ({better} is better)", fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle("Paired differences with 95% intervals")
    fig.tight_layout()
    save_png(fig, out / "differences.png", dpi=100)
    plt.close(fig)

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for cell, stages in result["training"].items():
        condition = cell.split("-")[0]
        color = f"C{conditions.index(condition)}" if condition in conditions else "gray"
        for ax, stage in ((left, "stage1"), (right, "stage2")):
            curve = stages.get(stage, {}).get("loss") or []
            if curve:
                ax.plot([p[0] for p in curve], [p[1] for p in curve], color=color, alpha=0.7,
                        label=cell)
    left.set(title="stage 1 (B: links, C: link-broken)", xlabel="step", ylabel="training loss")
    right.set(title="stage 2 (Dolly)", xlabel="step", ylabel="training loss")
    for ax in (left, right):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, out / "stage1_curves.png", dpi=100)
    plt.close(fig)


# --- all phases --------------------------------------------------------------------------


def curriculum(out_dir: str | Path, settings: dict, phases=PHASES, *,
               command: str | None = None) -> dict | None:
    """Run the asked phases in order (all three by default); return the scored result when
    the score phase ran."""
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        raise ValueError(f"unknown phase(s) {unknown}; choose from {', '.join(PHASES)}")
    result = None
    if "prepare" in phases:
        prepare(out_dir, settings, command=command)
    if "run" in phases:
        run(out_dir, settings, command=command)
    if "score" in phases:
        result = score(out_dir, command=command)
    return result
