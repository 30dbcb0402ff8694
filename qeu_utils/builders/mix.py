"""The initialization dataset (初期化用データセット): every category, mixed and split.

``build_init`` samples each category to its share of ``size`` (or keeps everything when
``size`` is None) and holds out whole items — a sentence, a kanji, a country — for the eval
split, so eval never shares an item with train. ``write_init`` writes train/eval JSONL, a
``DatasetDict``, a dataset card and LLaMA-Factory's ``dataset_info.json``, into a temporary
directory renamed into place: an existing build is never half-overwritten.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

from qeu_utils.builders.common import Group, merge_shared, rng_for
from qeu_utils.core.atomic import (
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    refuse_to_replace,
)
from qeu_utils.core.records import FIELDS, write_jsonl
from qeu_utils.text.style_detect import detect_style

DEFAULT_SIZE = 300
DEFAULT_PROPORTIONS = {"style": 0.35, "katakana": 0.2, "country": 0.15, "kanji": 0.2, "food": 0.1}
EVAL_FRACTION = 0.1


def builders() -> dict:
    """Category name → builder(seed) returning groups, in the mix's order."""
    from qeu_utils.builders.country import build_country
    from qeu_utils.builders.food import build_food
    from qeu_utils.builders.kanji import build_kanji
    from qeu_utils.builders.katakana import build_katakana
    from qeu_utils.builders.style import build_style

    return {"style": build_style, "katakana": build_katakana, "country": build_country,
            "kanji": build_kanji, "food": build_food}


def quotas(size: int, proportions: dict[str, float]) -> dict[str, int]:
    """Split ``size`` over categories by proportion (largest remainder, so they sum to size)."""
    total = sum(proportions.values())
    if total <= 0 or any(p < 0 for p in proportions.values()):
        raise ValueError(f"proportions must be non-negative and not all zero: {proportions}")
    exact = {c: size * p / total for c, p in proportions.items()}
    result = {c: math.floor(x) for c, x in exact.items()}
    by_remainder = sorted(exact, key=lambda c: (result[c] - exact[c], c))
    for c in by_remainder[: size - sum(result.values())]:
        result[c] += 1
    return result


def split_groups(groups: list[Group], seed: int, category: str, eval_fraction: float):
    """Hold out whole groups for eval: at least one, about ``eval_fraction`` of them."""
    order = sorted(groups, key=lambda g: rng_for(seed, "split", category, g.key).random())
    n_eval = max(1, round(len(groups) * eval_fraction)) if len(groups) > 1 else 0
    return order[n_eval:], order[:n_eval]


def sample(groups: list[Group], n: int | None, seed: int, label: str) -> list[dict]:
    """Weighted sampling without replacement (Efraimidis–Spirakis keys): ``n`` records, or all
    of them when ``n`` is None. Each record's weight is its group's."""
    keyed = []
    for g in groups:
        for r in g.records:
            u = rng_for(seed, label, r["id"]).random()
            keyed.append((u ** (1.0 / g.weight), r["id"], r))
    keyed.sort(key=lambda t: (-t[0], t[1]))
    return [r for _, _, r in (keyed if n is None else keyed[:n])]


def build_init(
    size: int | None = DEFAULT_SIZE,
    seed: int = 0,
    categories: list[str] | None = None,
    proportions: dict[str, float] | None = None,
    eval_fraction: float = EVAL_FRACTION,
    groups: dict[str, list[Group]] | None = None,
) -> tuple[list[dict], list[dict]]:
    """Return ``(train, eval)`` records. ``size=None`` keeps every record. ``groups`` gives a
    category's item groups directly (e.g. the parts notebooks 01–05 wrote) instead of
    building them; a category it lacks is built. Without ``categories`` the mix holds the
    categories ``proportions`` names (default: all); with both, every category needs a share. A
    share of 0 leaves the category out of both splits."""
    available = builders()
    unknown = [c for c in [*(categories or []), *(proportions or {})] if c not in available]
    if unknown:
        raise ValueError(f"unknown categories {unknown}; choose from {', '.join(available)}")
    categories = list(categories or [c for c in available if c in (proportions or available)])
    if proportions is not None and (missing := [c for c in categories if c not in proportions]):
        raise ValueError(f"proportions gives no share for {missing}: give every category one "
                         "(0 leaves it out)")
    shares = proportions or DEFAULT_PROPORTIONS
    props = {c: shares[c] for c in categories if shares[c] != 0}
    categories = list(props)
    if not categories:
        raise ValueError(f"every category's share is 0: {proportions}")
    if size is not None and size < 2 * len(categories):
        raise ValueError(f"size {size} is too small for {len(categories)} categories")
    if size is not None:
        train_size = size - max(len(categories), round(size * eval_fraction))
        train_quota = quotas(train_size, props)
        eval_quota = quotas(size - train_size, props)
    train, held_out = [], []
    for c in categories:
        pool = merge_shared((groups or {}).get(c) or available[c](seed))
        train_groups, eval_groups = split_groups(pool, seed, c, eval_fraction)
        train += sample(train_groups, None if size is None else train_quota[c], seed, "train")
        held_out += sample(eval_groups, None if size is None else max(1, eval_quota[c]), seed,
                           "eval")  # every category in the mix is evaluated
    return _shuffled(train, seed), _shuffled(held_out, seed)


def _shuffled(records: list[dict], seed: int) -> list[dict]:
    return sorted(records, key=lambda r: rng_for(seed, "order", r["id"]).random())


def write_init(
    out_dir: str | Path,
    train: list[dict],
    held_out: list[dict],
    *,
    seed: int,
    size: int | None,
    overwrite: bool = False,
) -> Path:
    """Write the build to ``out_dir`` (refusing to replace an existing one unless asked)."""
    out_dir = refuse_to_replace(out_dir, overwrite)
    overlap = {r["id"] for r in train} & {r["id"] for r in held_out}
    if overlap:
        raise ValueError(f"{len(overlap)} records are in both train and eval")
    with atomic_directory(out_dir) as tmp:
        write_jsonl(train, tmp / "train.jsonl")
        write_jsonl(held_out, tmp / "eval.jsonl")
        save_dataset_dict(tmp / "hf", train, held_out)
        atomic_write_json(tmp / "dataset_info.json", llama_factory_info())
        atomic_write_text(tmp / "README.md", dataset_card(train, held_out, seed=seed, size=size))
    return out_dir


def save_dataset_dict(path: Path, train: list[dict], held_out: list[dict]) -> None:
    from datasets import Dataset, DatasetDict

    def to_dataset(records, name):
        columns = {f: [r[f] for r in records] for f in FIELDS}
        ds = Dataset.from_dict(columns)
        # A content-derived fingerprint keeps saved files identical across identical builds.
        ds._fingerprint = f"{rng_for(0, name, *(r['id'] for r in records)).getrandbits(64):016x}"
        return ds

    splits = {"train": to_dataset(train, "train"), "eval": to_dataset(held_out, "eval")}
    DatasetDict(splits).save_to_disk(str(path))


def llama_factory_info() -> dict:
    columns = {"prompt": "instruction", "query": "input", "response": "output"}
    return {
        f"qeu_init_{split}": {
            "file_name": f"{split}.jsonl", "formatting": "alpaca", "columns": columns
        }
        for split in ("train", "eval")
    }


# The curriculum's link, carried by the instructions: a task answered in Chinese is asked in
# plain Japanese, one answered in English politely.
LINKED_STYLE = {"zh": "plain", "en": "polite"}


def instruction_styles(records: list[dict]) -> list[tuple[str, str, int, int]]:
    """``(category, answer language, n asked in the linked style, n)`` for every category
    with tasks answered in Chinese (``zh``, ``zh-Hans``, ``zh-Hant``) or English."""

    counts: Counter = Counter()
    for r in records:
        answer = r["lang"].split(">")[-1].split("-")[0]
        if answer in LINKED_STYLE:
            linked = detect_style(r["instruction"]).value == LINKED_STYLE[answer]
            counts[r["category"], answer, linked] += 1
    keys = sorted({(c, a) for c, a, _ in counts})
    return [(c, a, counts[c, a, True], counts[c, a, True] + counts[c, a, False])
            for c, a in keys]


def instruction_style_lines(records: list[dict]) -> list[str]:
    """The shares of :func:`instruction_styles` as a Markdown table (card and build log)."""
    lines = ["| category | answer in | asked in | share |", "|---|---|---|---:|"]
    for category, answer, linked, n in instruction_styles(records):
        lines.append(f"| {category} | {'Chinese' if answer == 'zh' else 'English'} | "
                     f"{LINKED_STYLE[answer]} Japanese | {linked}/{n} ({linked / n:.0%}) |")
    return lines


def dataset_card(train: list[dict], held_out: list[dict], *, seed: int, size: int | None) -> str:
    per_category = Counter(r["category"] for r in train)
    per_category_eval = Counter(r["category"] for r in held_out)
    per_task = Counter((r["category"], r["task"]) for r in train + held_out)
    sources = sorted({r["source"] for r in train + held_out})
    lines = [
        "---",
        "language: [ja, zh, en]",
        "license: cc-by-sa-4.0",
        "task_categories: [text-generation]",
        "pretty_name: QEU initialization dataset",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - {split: train, path: train.jsonl}",
        "  - {split: eval, path: eval.jsonl}",
        "---",
        "",
        "# QEU initialization dataset (初期化用データセット)",
        "",
        "A small dataset that gives a model not optimized for Japanese the *feel* of Japanese",
        "before real training: plain Japanese (常体) linked to Chinese, polite Japanese (敬体)",
        "linked to English, katakana and loanwords, country names, single kanji in Japanese /",
        "Traditional / Simplified form, and dish names. Built by `qeu_utils`"
        f" (`python -m qeu_utils build init --size {size if size is not None else 'all'}"
        f" --seed {seed}`).",
        "",
        "| category | train | eval |",
        "|---|---:|---:|",
    ]
    for c in sorted(set(per_category) | set(per_category_eval)):
        lines.append(f"| {c} | {per_category[c]} | {per_category_eval[c]} |")
    lines += [f"| **total** | {len(train)} | {len(held_out)} |", ""]
    lines += ["| category | task | records |", "|---|---|---:|"]
    lines += [f"| {c} | {t} | {n} |" for (c, t), n in sorted(per_task.items())]
    lines += [
        "",
        "## How it was built",
        "",
        "- `style`: the project's trilingual sentences (`qeu_utils/data/sources/trilingual.tsv`),",
        "  each row checked with `qeu_utils.text.style_detect` (plain detects as plain, polite as",
        "  polite, the converter maps one to the other wherever it supports the form).",
        "- `katakana`: the katakana table, and loanwords found with UniDic (fugashi) in the",
        "  project's sentences, dish names and word list, with their English.",
        "- `country`: CLDR names via Babel (193 UN members + 2 observer states). Traditional",
        "  Chinese is CLDR's `zh_Hant`, which is Taiwan usage (南韓, 北韓, 象牙海岸). Where CLDR's",
        "  name is a locale picker's display form, the project gives the country's name",
        "  (`qeu_utils.text.countries.OVERRIDES`, 11 countries): Antigua and Barbuda, Bosnia and",
        "  Herzegovina, Saint Kitts and Nevis, Saint Lucia, São Tomé and Príncipe, Trinidad and",
        "  Tobago, Saint Vincent and the Grenadines (not `&`/`St.`); Democratic Republic of the",
        "  Congo / コンゴ民主共和国 / 刚果民主共和国 and Republic of the Congo (not",
        "  `Congo - Kinshasa`, 刚果（金）); Myanmar / ミャンマー (not `Myanmar (Burma)`); and",
        "  Palestine / パレスチナ / 巴勒斯坦, the observer state (not `Palestinian Territories`).",
        "- `kanji`: the 2,136 Jōyō kanji through OpenCC's dictionaries; ambiguous characters",
        "  are answered with every candidate.",
        "- `food`: the project's dish table (`qeu_utils/data/sources/dishes.tsv`), origins named",
        "  with `qeu_utils.text.countries`.",
        "",
        "The eval split holds out whole items (a sentence, a kanji, a country), never a record",
        "of an item also in train. Same arguments, same bytes.",
        "",
        "The instructions carry the curriculum's link: tasks answered in Chinese are asked in",
        "plain Japanese (普通体), tasks answered in English politely (です・ます). Measured on",
        "this build with `qeu_utils.text.style_detect.detect_style`:",
        "",
        *instruction_style_lines(train + held_out),
        "",
        f"Sources: {', '.join(sources)}. Licenses of the data behind them: CLDR (Unicode",
        "License), OpenCC (Apache-2.0), UniDic (BSD-3-Clause), kanji-lists (MIT), JMdict",
        "(EDRDG licence, CC BY-SA 4.0; loanword glosses, © the Electronic Dictionary Research",
        "and Development Group); the project's own text is Apache-2.0. Because of JMdict the",
        "dataset as a whole is CC BY-SA 4.0.",
        "",
        "Fields: `id, category, task, instruction, input, output, lang, style, source`",
        "(Alpaca-compatible; `dataset_info.json` registers both splits for LLaMA-Factory).",
    ]
    return "\n".join(lines) + "\n"


def push_to_hub(out_dir: str | Path, repo_id: str, private: bool = True) -> str:
    """Upload a build (JSONL splits, card, dataset_info.json) to a Hub dataset repo.

    Only called when the user asks (``--push-to-hub``). The token comes from ``HF_TOKEN`` or
    ``huggingface-cli login`` and is never printed.
    """

    from huggingface_hub import HfApi

    api = HfApi(token=os.environ.get("HF_TOKEN"))
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id, repo_type="dataset", folder_path=str(out_dir),
        allow_patterns=["*.jsonl", "README.md", "dataset_info.json"],
        commit_message="Upload QEU initialization dataset built with qeu_utils",
    )
    return f"https://huggingface.co/datasets/{repo_id}"
