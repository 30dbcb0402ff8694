"""Stage-2 data: Japanese Dolly (``kunishou/databricks-dolly-15k-ja``, CC BY-SA 3.0), revised
the way QEU did it.

Each step is a small function over a batch of rows, run with ``datasets.map``/``filter``
(batched, ``num_proc`` workers), and each reports what it removed or changed:

1. ``normalize``: NFKC only where it is safe (full-width ASCII → ASCII, half-width katakana →
   full-width; Japanese punctuation such as 。、！？「」 stays), trimmed, field names unified.
2. ``drop_broken``: empty output, output identical to the instruction, output that is only a
   URL or only punctuation, mojibake, and text that is not Japanese where Japanese is expected.
3. ``drop_trivia``: low-value fictional-universe trivia, matched on instruction + input
   against a configurable topic list (``DEFAULT_TRIVIA_TOPICS``).
4. ``deduplicate``: on the normalized instruction + input; the first occurrence stays.
5. ``annotate_katakana``: loanwords get their English in parentheses (``コーヒー(coffee)``),
   the QEU trait, everywhere except inside code blocks, inline code and URLs.
6. ``normalize_style`` (optional): outputs converted to 常体 or 敬体 with
   ``qeu_utils.text.style_convert``.
7. split into N parts, deterministic and stratified by Dolly category.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import Counter
from pathlib import Path

from qeu_utils.builders.common import rng_for
from qeu_utils.core.atomic import (
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    refuse_to_replace,
)
from qeu_utils.core.records import FIELDS as RECORD_FIELDS
from qeu_utils.core.records import json_lines, make_record, write_jsonl
from qeu_utils.core.resources import dolly_sample_path, hub_offline
from qeu_utils.text.katakana import annotate_loanwords
from qeu_utils.text.style_convert import to_plain, to_polite
from qeu_utils.text.style_detect import detect_style

DEFAULT_SOURCE = "kunishou/databricks-dolly-15k-ja"
SAMPLE = dolly_sample_path()
FIELDS = ("instruction", "input", "output", "category", "index")
ALIASES = {"context": "input", "response": "output"}
CATEGORIES = ("open_qa", "closed_qa", "general_qa", "classification", "brainstorming",
              "information_extraction", "summarization", "creative_writing")
# Fictional-universe trivia QEU dropped as low value (Game of Thrones first among them).
DEFAULT_TRIVIA_TOPICS = (
    "ゲーム・オブ・スローンズ", "Game of Thrones", "ウェスタロス", "Westeros", "氷と炎の歌",
    "ジョン・スノウ", "デナーリス", "ラニスター", "スターク家",
    "スター・ウォーズ", "Star Wars", "ジェダイ", "ダース・ベイダー",
    "ハリー・ポッター", "Harry Potter", "ホグワーツ", "ロード・オブ・ザ・リング", "指輪物語",
)
EXAMPLES_PER_STEP = 3


class DollySourceError(ValueError):
    """The Dolly source cannot be read: the message names the file, line or field."""


# --- loading ------------------------------------------------------------------------------


def load_source(source: str | os.PathLike):
    """A ``datasets.Dataset`` with string columns instruction, input, output, category, index,
    from a local ``.json``/``.jsonl``/``.parquet`` file or a Hub dataset id."""
    from datasets import Dataset

    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix == ".jsonl":
            rows = _read_jsonl_rows(path)
        elif path.suffix == ".json":
            rows = _read_json_rows(path)
        elif path.suffix == ".parquet":
            table = Dataset.from_parquet(str(path)).to_list()
            rows = [(f"{path} row {n}", row) for n, row in enumerate(table)]
        else:
            raise DollySourceError(f"{path}: expected a .json, .jsonl or .parquet file")
        return Dataset.from_dict(_columns(rows, str(path)))
    if path.exists() or str(source).startswith((".", "/", "~")) or path.suffix in {
        ".json", ".jsonl", ".parquet"
    }:
        raise DollySourceError(f"{path}: no such file")
    return Dataset.from_dict(_columns(_load_hub(str(source)), str(source)))


def _read_jsonl_rows(path: Path) -> list[tuple[str, dict]]:
    rows = []
    for lineno, row in json_lines(path, DollySourceError):
        if not isinstance(row, dict):
            raise DollySourceError(f"{path}:{lineno}: expected a JSON object")
        rows.append((f"{path}:{lineno}", row))
    return rows


def _read_json_rows(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DollySourceError(
            f"{path}:{err.lineno}:{err.colno}: not valid JSON ({err.msg})"
        ) from err
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise DollySourceError(f"{path}: expected a JSON array of objects")
    return [(f"{path} record {n}", row) for n, row in enumerate(data)]


def _load_hub(dataset_id: str) -> list:
    how = (f"pass a local copy with --source path/to/databricks-dolly-15k-ja.json (download it "
           f"from the Hub where you have internet), or try the offline sample: --source {SAMPLE}")
    if hub_offline():
        raise DollySourceError(f"{dataset_id}: the Hub is off (HF_HUB_OFFLINE=1); {how}")
    try:
        from datasets import load_dataset
        from huggingface_hub import HfApi

        # One quick request first: load_dataset retries an unreachable Hub for ~25 s.
        HfApi().dataset_info(dataset_id, timeout=10)
        data = load_dataset(dataset_id, split="train")
    except Exception as err:  # noqa: BLE001 — network, auth or missing dataset alike
        raise DollySourceError(
            f"{dataset_id}: could not load it from the Hugging Face Hub "
            f"({type(err).__name__}); {how}"
        ) from err
    return [(f"{dataset_id} record {n}", row) for n, row in enumerate(data)]


def _columns(rows: list, where: str) -> dict[str, list[str]]:
    """Unify field names (context → input, response → output) and check required fields."""
    if not rows:
        raise DollySourceError(f"{where}: no records")
    columns = {f: [] for f in FIELDS}
    for n, (place, row) in enumerate(rows):
        row = {ALIASES.get(k, k): v for k, v in row.items()}
        missing = [f for f in ("instruction", "output", "category") if f not in row]
        if missing:
            names = {"output": "'output' (or 'response')", "instruction": "'instruction'",
                     "category": "'category'"}
            raise DollySourceError(
                f"{place}: missing field {', '.join(names[m] for m in missing)}; "
                f"fields present: {', '.join(sorted(row)) or 'none'}"
            )
        for f in FIELDS:
            value = row.get(f, str(n) if f == "index" else "")
            columns[f].append("" if value is None else str(value))
    return columns


# --- the revision steps: each takes a batch (dict of lists) -------------------------------

# Full-width ASCII letters and digits, and half-width katakana (with their ｡｢｣､･): the forms
# NFKC should fold. Japanese full-width punctuation (！？（）「」) and the ideographic space stay.
_NFKC_SAFE = re.compile(r"[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\uff61-\uff9f]+")


def normalize_text(text: str) -> str:
    """NFKC where it is safe (see above), then trim."""
    return _NFKC_SAFE.sub(lambda m: unicodedata.normalize("NFKC", m.group(0)), text).strip()


def normalize(batch: dict) -> dict:
    out = {f: [normalize_text(t) for t in batch[f]] for f in ("instruction", "input", "output")}
    out["category"] = [c.strip() for c in batch["category"]]
    return out


_URLS_ONLY = re.compile(r"^(?:(?:https?://|www\.)\S+\s*)+$")
_JAPANESE = re.compile(r"[\u3041-\u3096\u30a1-\u30fa\u4e00-\u9fff\u3005]")
_KANA = re.compile(r"[\u3041-\u3096\u30a1-\u30fa]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_CP1252_MOJIBAKE = re.compile(
    r"[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
    r"\u02c6\u02dc\u2013-\u2122]"
)
# Instructions that legitimately ask for an answer that is not Japanese.
_NON_JAPANESE_OK = re.compile(
    r"英語|英訳|英文|English|翻訳|訳して|コード|プログラム|SQL|正規表現|スペル"
)


def is_mojibake(text: str) -> bool:
    """U+FFFD, or UTF-8 bytes read as cp1252/Latin-1 (日本 → æ—¥æœ¬)."""
    if "\ufffd" in text:
        return True
    if not _CP1252_MOJIBAKE.search(text):
        return False
    for codec in ("cp1252", "latin-1"):
        try:
            repaired = text.encode(codec, errors="ignore").decode("utf-8", errors="ignore")
        except UnicodeError:
            continue
        if _JAPANESE.search(repaired):
            return True
    return False


def broken_reason(instruction: str, output: str) -> str:
    """Why a record is broken ('' when it is fine)."""
    if not output.strip():
        return "empty_output"
    if output.strip() == instruction.strip():
        return "output_equals_instruction"
    if _URLS_ONLY.match(output.strip()):
        return "url_only"
    if all(unicodedata.category(ch)[0] in "PSZ" for ch in output):
        return "punctuation_only"
    if is_mojibake(instruction) or is_mojibake(output):
        return "mojibake"
    if not _KANA.search(instruction):
        return "not_japanese"
    if (not _JAPANESE.search(output) and len(_LATIN_WORD.findall(output)) >= 3
            and not _NON_JAPANESE_OK.search(instruction)):
        return "not_japanese"
    return ""


def broken_reasons(batch: dict) -> dict:
    return {"_reason": [broken_reason(i, o) for i, o in zip(batch["instruction"],
                                                           batch["output"], strict=True)]}


def trivia_reasons(batch: dict, topics: tuple[str, ...]) -> dict:
    folded = [t.casefold() for t in topics]
    reasons = []
    for instruction, context in zip(batch["instruction"], batch["input"], strict=True):
        text = f"{instruction}\n{context}".casefold()
        hit = next((topics[k] for k, t in enumerate(folded) if t in text), None)
        reasons.append(f"trivia: {hit}" if hit else "")
    return {"_reason": reasons}


def dedup_key(instruction: str, context: str) -> str:
    return " ".join(f"{instruction}\n{context}".split()).casefold()


# Code fences, inline code and URLs are copied as they are; only the prose between is edited.
# Japanese text has no spaces to end a URL: it is its ASCII run, plus a non-ASCII path tail
# (wiki/コーヒー) only when punctuation, a space or the end of the text follows that tail.
_URL = (r"(?:https?://|www\.)[!-~]+"
        r"(?:[^\s!-~\u3000-\u303f\u3041-\u309f\uff00-\uffef]+(?=[\s\u3000-\u303f\uff00-\uffef]|$))?")
_PROTECTED = re.compile(rf"```.*?(?:```|$)|`[^`\n]*`|{_URL}", re.DOTALL)


def edit_prose(text: str, edit) -> str:
    pieces, last = [], 0
    for match in _PROTECTED.finditer(text):
        pieces += [edit(text[last:match.start()]), match.group(0)]
        last = match.end()
    pieces.append(edit(text[last:]))
    return "".join(pieces)


def annotate_katakana(batch: dict) -> dict:
    return {f: [edit_prose(t, annotate_loanwords) for t in batch[f]]
            for f in ("instruction", "input", "output")}


def normalize_style(batch: dict, style: str) -> dict:
    convert = {"plain": to_plain, "polite": to_polite}[style]
    return {"output": [edit_prose(t, convert) for t in batch["output"]]}


# --- the pipeline -------------------------------------------------------------------------


def revise(
    dataset,
    *,
    style: str = "keep",
    trivia_topics: tuple[str, ...] = DEFAULT_TRIVIA_TOPICS,
    num_proc: int | None = None,
) -> tuple:
    """Run steps 1–6; return the revised dataset and the per-step report."""
    if style not in ("keep", "plain", "polite"):
        raise ValueError(f"style must be keep, plain or polite, got {style!r}")
    report = []
    kw = {"batched": True, "num_proc": num_proc, "load_from_cache_file": False}

    def changed(step, before, after, fields):
        old = {f: before[f] for f in fields + ("index",)}
        new = {f: after[f] for f in fields}
        diffs = [i for i in range(len(before)) if any(old[f][i] != new[f][i] for f in fields)]
        examples = [{"index": old["index"][i]} | {
            f: {"before": old[f][i], "after": new[f][i]} for f in fields if old[f][i] != new[f][i]
        } for i in diffs[:EXAMPLES_PER_STEP]]
        report.append({"step": step, "records_in": len(before), "changed": len(diffs),
                       "examples": examples})

    def dropped(step, marked):
        reasons = marked["_reason"]
        counts = Counter(r for r in reasons if r)
        examples = [{k: marked[i][k] for k in ("index", "instruction", "output", "_reason")}
                    for i in [i for i, r in enumerate(reasons) if r][:EXAMPLES_PER_STEP]]
        kept = marked.select([i for i, r in enumerate(reasons) if not r])
        report.append({"step": step, "records_in": len(marked), "removed": sum(counts.values()),
                       "by_reason": dict(sorted(counts.items())), "examples": examples})
        return kept.remove_columns("_reason")

    text_fields = ("instruction", "input", "output")
    after = dataset.map(normalize, desc="1/6 normalize", **kw)
    changed("normalize", dataset, after, text_fields)
    ds = dropped("drop_broken", after.map(broken_reasons, desc="2/6 find broken records", **kw))
    ds = dropped("drop_trivia", ds.map(trivia_reasons, fn_kwargs={"topics": trivia_topics},
                                       desc="3/6 find low-value trivia", **kw))

    seen: set[str] = set()
    keep, duplicates = [], []
    for i, key in enumerate(map(dedup_key, ds["instruction"], ds["input"])):
        (duplicates if key in seen else keep).append(i)
        seen.add(key)
    report.append({"step": "deduplicate", "records_in": len(ds), "removed": len(duplicates),
                   "examples": [{k: ds[i][k] for k in ("index", "instruction")}
                                for i in duplicates[:EXAMPLES_PER_STEP]]})
    ds = ds.select(keep)

    # The slow step (a UniDic parse of every text): its bar shows it is moving.
    after = ds.map(annotate_katakana, desc="5/6 annotate katakana", **kw)
    changed("annotate_katakana", ds, after, text_fields)
    ds = after
    if style != "keep":
        after = ds.map(normalize_style, fn_kwargs={"style": style},
                       desc=f"6/6 convert to {style}", **kw)
        changed(f"normalize_style ({style})", ds, after, ("output",))
        ds = after
    return ds, report


def split_parts(rows: list[dict], parts: int, seed: int) -> list[list[dict]]:
    """Deal each category's rows, in a seeded order, round-robin into ``parts`` parts."""
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    by_category: dict[str, list[dict]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row)
    out: list[list[dict]] = [[] for _ in range(parts)]
    start = 0
    for category in sorted(by_category):
        ordered = sorted(by_category[category],
                         key=lambda r: rng_for(seed, "dolly-split", r["index"]).random())
        for k, row in enumerate(ordered):
            out[(start + k) % parts].append(row)
        start = (start + len(ordered)) % parts  # keeps part sizes within one of each other
    return out


def to_records(rows: list[dict], source: str) -> list[dict]:
    records = []
    for row in rows:
        style = detect_style(row["output"]).value
        records.append(make_record(
            category="dolly", task=row["category"] or "general_qa",
            instruction=row["instruction"], input=row["input"], output=row["output"],
            lang="ja>ja", style=style if style in ("plain", "polite") else "", source=source,
        ))
    return records


def build_dolly(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    parts: int = 4,
    seed: int = 0,
    style: str = "keep",
    trivia_topics: tuple[str, ...] = DEFAULT_TRIVIA_TOPICS,
    num_proc: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Revise a Dolly source and write the parts; return the report (also in report.json)."""
    out_dir = refuse_to_replace(out_dir, overwrite)
    dataset = load_source(source)
    revised, steps = revise(dataset, style=style, trivia_topics=trivia_topics, num_proc=num_proc)
    provenance = "project" if Path(source).resolve() == SAMPLE.resolve() else "dolly-ja"
    split = split_parts(revised.to_list(), parts, seed)
    names = [f"part-{k + 1}-of-{parts}" for k in range(parts)]
    # The packaged sample is named as the package ships it, not by this machine's path to it.
    shown = f"qeu_utils/data/sources/{SAMPLE.name}" if provenance == "project" else str(source)
    report = {
        "source": shown, "records_in": len(dataset), "records_out": len(revised),
        "style": style, "seed": seed, "steps": steps,
        "parts": [{"name": n, "records": len(p), "by_category": dict(sorted(Counter(
            r["category"] for r in p).items()))} for n, p in zip(names, split, strict=True)],
    }
    with atomic_directory(out_dir) as tmp:
        for name, rows in zip(names, split, strict=True):
            records = to_records(rows, provenance)
            write_jsonl(records, tmp / f"{name}.jsonl")
            _save_part(tmp / "hf" / name, records)
        atomic_write_json(tmp / "report.json", report)
        info = {f"qeu_dolly_{n.replace('-', '_')}": {
            "file_name": f"{n}.jsonl", "formatting": "alpaca",
            "columns": {"prompt": "instruction", "query": "input", "response": "output"}}
            for n in names}
        atomic_write_json(tmp / "dataset_info.json", info)
        atomic_write_text(tmp / "README.md", dataset_card(report, names))
    return report


def _save_part(path: Path, records: list[dict]) -> None:
    from datasets import Dataset, DatasetDict

    ds = Dataset.from_dict({f: [r[f] for r in records] for f in RECORD_FIELDS})
    ds._fingerprint = f"{rng_for(0, path.name, *(r['id'] for r in records)).getrandbits(64):016x}"
    DatasetDict({"train": ds}).save_to_disk(str(path))


def dataset_card(report: dict, names: list[str]) -> str:
    lines = [
        "---", "language: [ja]", "license: cc-by-sa-3.0", "task_categories: [text-generation]",
        "pretty_name: Japanese Dolly, QEU revision", "configs:",
    ]
    for n in names:
        lines += [f"- config_name: {n}", "  data_files:", f"  - {{split: train, path: {n}.jsonl}}"]
    lines += [
        "---", "", "# Japanese Dolly, revised the QEU way", "",
        f"Source: `{report['source']}` (derived from databricks-dolly-15k via",
        "kunishou/databricks-dolly-15k-ja, CC BY-SA 3.0). Revised by `qeu_utils`: safe NFKC,",
        "broken and low-value trivia records dropped, duplicates removed, katakana loanwords",
        "annotated with their English in parentheses (loanword glosses from JMdict, EDRDG,",
        f"CC BY-SA 4.0), output style: {report['style']}; split into {len(names)} parts",
        "stratified by category.", "",
        f"Records: {report['records_in']} in, {report['records_out']} out.", "",
        "| step | records in | removed | changed |", "|---|---:|---:|---:|",
    ]
    for s in report["steps"]:
        lines.append(f"| {s['step']} | {s['records_in']} | {s.get('removed', '')} | "
                     f"{s.get('changed', '')} |")
    lines += ["", "| part | records |", "|---|---:|"]
    lines += [f"| {p['name']} | {p['records']} |" for p in report["parts"]]
    return "\n".join(lines) + "\n"
