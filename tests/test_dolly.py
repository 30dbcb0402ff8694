"""Stage-2 data: each revision step on crafted rows, bad sources, and the whole build."""

import json

import pytest
from datasets import Dataset

from qeu_utils.builders import dolly
from qeu_utils.builders.dolly import DollySourceError, broken_reason, edit_prose, normalize_text


def _rows(*rows):
    cols = {f: [] for f in dolly.FIELDS}
    for n, row in enumerate(rows):
        full = {"input": "", "category": "open_qa", "index": str(n)} | row
        for f in dolly.FIELDS:
            cols[f].append(full[f])
    return Dataset.from_dict(cols)


def _step(report, name):
    return next(s for s in report if s["step"] == name)


def test_normalize_folds_only_what_is_safe():
    assert normalize_text("  ＣＰＵは２０２４年に ") == "CPUは2024年に"
    assert normalize_text("ｺｰﾋｰとｽﾏｰﾄﾌｫﾝ｡") == "コーヒーとスマートフォン。"
    assert normalize_text("ガ") == "ガ"
    # Japanese punctuation and the ideographic space are not NFKC'd into ASCII.
    assert normalize_text("本当？（はい！）「そう」　です") == "本当？（はい！）「そう」　です"


@pytest.mark.parametrize("instruction, output, reason", [
    ("日本の首都は？", "", "empty_output"),
    ("日本の首都は？", "   ", "empty_output"),
    ("日本の首都は？", "日本の首都は？", "output_equals_instruction"),
    ("富士山について教えて。", "https://ja.wikipedia.org/wiki/富士山", "url_only"),
    ("富士山について教えて。", "。。。", "punctuation_only"),
    ("富士山について教えて。", "…", "punctuation_only"),
    ("日本の首都は？", "日本の首都は東京です。".encode().decode("cp1252", errors="replace"),
     "mojibake"),
    ("日本の首都は？", "東京で\ufffdす。", "mojibake"),
    ("What is the capital of Japan?", "東京です。", "not_japanese"),
    ("好きな季節は？", "I like the spring season very much.", "not_japanese"),
    ("日本の首都は？", "東京です。", ""),
    ("「ありがとう」を英語に訳してください。", "Thank you very much.", ""),
    ("一番高い山は？", "Mount Everest", ""),
    ("2たす2は？", "4", ""),
])
def test_broken_reasons(instruction, output, reason):
    assert broken_reason(instruction, output) == reason


def test_code_blocks_inline_code_and_urls_are_not_edited():
    code = "\n```python\n# データ\nx = 'コーヒー'\n```\n"
    text = f"データを使う。{code}`データ` と https://example.com/データ の後もデータ。"
    assert edit_prose(text, lambda s: s.replace("データ", "DATA")) == (
        f"DATAを使う。{code}`データ` と https://example.com/データ の後もDATA。"
    )


def test_revise_counts_every_step_and_keeps_the_good_rows():
    ds = _rows(
        {"instruction": "ＡＩとは何ですか？", "output": "コンピューターが学習する技術です。"},
        {"instruction": "AIとは何ですか？  ", "output": "重複です。"},
        {"instruction": "コーヒーの産地は？", "output": ""},
        {"instruction": "ジョン・スノウの父は？", "input": "ゲーム・オブ・スローンズ",
         "output": "ネッドです。"},
        {"instruction": "好きなスポーツは？", "output": "サッカーが好きだ。"},
    )
    revised, report = dolly.revise(ds, style="polite")
    assert revised["output"] == ["コンピューター(computer)が学習する技術です。",
                                 "サッカー(soccer)が好きです。"]
    assert revised["instruction"][0] == "AIとは何ですか？"
    assert _step(report, "normalize")["changed"] == 2
    assert _step(report, "drop_broken")["by_reason"] == {"empty_output": 1}
    assert _step(report, "drop_trivia")["by_reason"] == {"trivia: ゲーム・オブ・スローンズ": 1}
    assert _step(report, "deduplicate")["removed"] == 1
    assert _step(report, "annotate_katakana")["changed"] == 2
    assert _step(report, "normalize_style (polite)")["changed"] == 1
    with pytest.raises(ValueError, match="style must be keep, plain or polite"):
        dolly.revise(ds, style="casual")


def test_split_is_stratified_and_deterministic():
    rows = [{"category": c, "index": f"{c}{n}"} for c in ("open_qa", "summarization")
            for n in range(10)]
    parts = dolly.split_parts(rows, 4, seed=0)
    assert [len(p) for p in parts] == [5, 5, 5, 5]
    for p in parts:
        assert {r["category"] for r in p} == {"open_qa", "summarization"}
    assert parts == dolly.split_parts(rows, 4, seed=0)
    assert parts != dolly.split_parts(rows, 4, seed=1)
    with pytest.raises(ValueError, match="parts must be at least 1"):
        dolly.split_parts(rows, 0, seed=0)


# --- bad sources ---------------------------------------------------------------------------


def test_malformed_jsonl_line_is_named(tmp_path):
    path = tmp_path / "d.jsonl"
    good = json.dumps({"instruction": "a", "output": "b", "category": "open_qa"})
    path.write_text(good + "\n" + good[:-5] + "\n", encoding="utf-8")
    with pytest.raises(DollySourceError, match=rf"{path}:2: not valid JSON"):
        dolly.load_source(path)


def test_missing_fields_are_named(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"instruction": "a", "category": "open_qa", "foo": 1}) + "\n")
    with pytest.raises(DollySourceError, match=r"d.jsonl:1: missing field 'output' \(or "
                                               r"'response'\); fields present: category, foo"):
        dolly.load_source(path)


def test_dolly_field_names_are_unified(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"instruction": "日本の首都は？", "context": "",
                                 "response": "東京です。", "category": "open_qa"}]),
                    encoding="utf-8")
    ds = dolly.load_source(path)
    assert ds[0] == {"instruction": "日本の首都は？", "input": "", "output": "東京です。",
                     "category": "open_qa", "index": "0"}


def test_bad_json_file_and_missing_source(tmp_path, monkeypatch):
    path = tmp_path / "d.json"
    path.write_text('[{"instruction": "a",\n oops]', encoding="utf-8")
    with pytest.raises(DollySourceError, match=rf"{path}:2:2: not valid JSON"):
        dolly.load_source(path)
    with pytest.raises(DollySourceError, match="no such file"):
        dolly.load_source(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DollySourceError, match="no records"):
        dolly.load_source(empty)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DollySourceError, match=r"the Hub is off .*--source path/to/"
                                               r"databricks-dolly-15k-ja.json"):
        dolly.load_source("kunishou/databricks-dolly-15k-ja")


# --- the project's sample, with its deliberate defects ---------------------------------------


@pytest.fixture(scope="module")
def sample_revision():
    data = dolly.load_source(dolly.SAMPLE)
    revised, report = dolly.revise(data)
    return data, {r["index"]: r for r in revised}, report


def test_sample_defects_are_all_caught(sample_revision):
    data, kept, report = sample_revision
    assert len(data) == 140
    assert _step(report, "drop_broken")["by_reason"] == {
        "empty_output": 3, "mojibake": 2, "not_japanese": 3, "output_equals_instruction": 2,
        "punctuation_only": 2, "url_only": 2}
    assert _step(report, "drop_trivia")["removed"] == 4
    assert _step(report, "deduplicate")["removed"] == 4
    dropped = {"4", "58", "108", "47", "112", "18", "76", "40", "94", "22", "90", "29", "65",
               "119", "11", "54", "83", "126", "36", "72", "101", "130"}
    assert set(kept) == {str(i) for i in range(140)} - dropped


def test_sample_normalization_survivors(sample_revision):
    data, kept, _ = sample_revision
    assert "ＣＰＵ" in data[67]["instruction"] + data[67]["output"]
    assert "ＣＰＵ" not in kept["67"]["instruction"] + kept["67"]["output"]
    assert "ｽﾏｰﾄﾌｫﾝ" in data[87]["instruction"]
    assert kept["87"]["instruction"].startswith("スマートフォン(smartphone)の")
    assert kept["128"]["instruction"] == kept["128"]["instruction"].strip()


def test_sample_polite_questions_get_polite_answers(sample_revision):
    # Style is the curriculum's first signal: a polite question must not teach a plain answer.
    from qeu_utils.text.style_detect import Style, detect_style

    _, kept, _ = sample_revision
    questions = {i: r for i, r in kept.items() if r["instruction"].endswith("？")
                 and detect_style(r["instruction"]) is Style.POLITE}
    assert len(questions) == 52

    def prose(text):  # bullet lists and code blocks are not answers in a register
        lines, in_code = [], False
        for line in text.splitlines():
            in_code ^= line.startswith("```")
            if not in_code and not line.startswith(("- ", "```")):
                lines.append(line)
        return "\n".join(lines)

    styles = {i: detect_style(prose(r["output"])) for i, r in questions.items()}
    assert {i: s for i, s in styles.items() if s is not Style.POLITE} == {
        "52": Style.NONE, "100": Style.NONE}  # the two bullet-list answers
    assert kept["79"]["output"] == "花の蜜です。"
    assert kept["21"]["output"] == "東京と改称されました。"


def test_code_and_urls_survive_untouched_and_katakana_after_a_url_is_annotated(sample_revision):
    data, kept, _ = sample_revision
    code = data[105]["output"].split("```")[1]
    assert kept["105"]["output"].split("```")[1] == code  # コーヒー inside the code block stays
    assert "このプログラム(program)を実行すると" in kept["105"]["output"]
    assert "# データを読み込む" in kept["59"]["output"]
    assert "（https://www.jma.go.jp/）で確認できます。スマートフォン(smartphone)の" in kept["137"][
        "output"]


def test_build_writes_parts_report_and_card(tmp_path):
    out = tmp_path / "dolly"
    report = dolly.build_dolly(dolly.SAMPLE, out, parts=4, seed=0)
    assert sorted(p.name for p in out.glob("*.jsonl")) == [
        f"part-{k}-of-4.jsonl" for k in range(1, 5)]
    sizes = [p["records"] for p in report["parts"]]
    assert sum(sizes) == report["records_out"] == 118 and max(sizes) - min(sizes) <= 1
    saved = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert saved["steps"][1]["by_reason"]["empty_output"] == 3
    from qeu_utils.core.records import read_jsonl

    records = read_jsonl(out / "part-1-of-4.jsonl")
    assert {r["category"] for r in records} == {"dolly"}
    assert {r["source"] for r in records} == {"project"}
    assert {r["task"] for r in records} <= set(dolly.CATEGORIES)
    assert "qeu_dolly_part_1_of_4" in json.loads((out / "dataset_info.json").read_text())
    assert "| drop_trivia | 126 | 4 |" in (out / "README.md").read_text(encoding="utf-8")
    with pytest.raises(FileExistsError, match="--overwrite"):
        dolly.build_dolly(dolly.SAMPLE, out)
    again = dolly.build_dolly(dolly.SAMPLE, tmp_path / "again", parts=4, seed=0)
    assert again == report
    for k in range(1, 5):
        name = f"part-{k}-of-4.jsonl"
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_unreachable_hub_fails_fast_with_how_to_fix(monkeypatch):
    import huggingface_hub

    def unreachable(self, *args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", unreachable)
    with pytest.raises(DollySourceError) as err:
        dolly.load_source(dolly.DEFAULT_SOURCE)
    message = str(err.value)
    assert "could not load it from the Hugging Face Hub (ConnectionError)" in message
    assert f"--source {dolly.SAMPLE}" in message
