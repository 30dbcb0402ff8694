import json

import pytest

from qeu_utils.core.records import (
    FIELDS,
    RecordError,
    make_record,
    read_jsonl,
    record_id,
    to_alpaca,
    to_messages,
    validate,
    write_jsonl,
)


def _record(**changes):
    fields = dict(category="style", task="plain_to_zh", instruction="次の文を中国語に訳して。",
                  input="東京は日本の首都だ。", output="东京是日本的首都。", lang="ja>zh",
                  style="plain", source="project")
    fields.update(changes)
    return make_record(**fields)


def test_id_is_stable_and_content_addressed():
    a, b = _record(), _record()
    assert a["id"] == b["id"] == record_id("style", "plain_to_zh", "次の文を中国語に訳して。",
                                           "東京は日本の首都だ。", "东京是日本的首都。")
    assert len(a["id"]) == 16
    assert _record(output="東京是日本的首都。")["id"] != a["id"]
    assert list(a) == list(FIELDS)


def test_chat_and_alpaca_layouts():
    r = _record()
    assert to_messages(r) == [
        {"role": "user", "content": "次の文を中国語に訳して。\n\n東京は日本の首都だ。"},
        {"role": "assistant", "content": "东京是日本的首都。"},
    ]
    assert to_messages(_record(input=""), system="You are helpful.")[0] == {
        "role": "system", "content": "You are helpful."}
    assert to_messages(_record(input=""))[0]["content"] == "次の文を中国語に訳して。"
    assert to_alpaca(r) == {"instruction": "次の文を中国語に訳して。",
                            "input": "東京は日本の首都だ。", "output": "东京是日本的首都。"}


@pytest.mark.parametrize("change, message", [
    ({"category": "poetry"}, "field 'category' is 'poetry', expected one of style, katakana"),
    ({"style": "casual"}, "field 'style' is 'casual'"),
    ({"output": "  "}, "field 'output' is empty"),
    ({"lang": 3}, "field 'lang' must be a string, got int"),
])
def test_validation_names_the_field(change, message):
    r = _record()
    r.update(change)
    with pytest.raises(RecordError, match=message):
        validate(r, where="row 7")


def test_missing_unknown_fields_and_tampered_id():
    r = _record()
    del r["source"]
    with pytest.raises(RecordError, match=r"row: missing field\(s\) source"):
        validate(r, where="row")
    r = _record() | {"extra": "x"}
    with pytest.raises(RecordError, match=r"unknown field\(s\) extra"):
        validate(r)
    r = _record()
    r["output"] = "北京"
    with pytest.raises(RecordError, match="field 'id' is"):
        validate(r)


def test_jsonl_round_trip_keeps_japanese_readable(tmp_path):
    records = [_record(), _record(task="zh_to_plain", input="东京是日本的首都。",
                                  output="東京は日本の首都だ。", lang="zh>ja")]
    path = tmp_path / "d.jsonl"
    assert write_jsonl(records, path) == 2
    text = path.read_text(encoding="utf-8")
    assert "東京は日本の首都だ。" in text  # not \u escapes
    assert read_jsonl(path) == records


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps(_record(), ensure_ascii=False)
    path.write_text(good + "\n\n" + '{"id": "x", "category": \n', encoding="utf-8")
    with pytest.raises(RecordError, match=rf"{path}:3: not valid JSON"):
        read_jsonl(path)
    path.write_text(good + "\n" + json.dumps({"id": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=rf"{path}:2: missing field"):
        read_jsonl(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(RecordError, match="no records"):
        read_jsonl(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "d.jsonl"
    write_jsonl([_record()], path)
    before = path.read_bytes()
    bad = _record()
    bad["category"] = "nope"
    with pytest.raises(RecordError, match="record 2 for"):
        write_jsonl([_record(), bad], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d.jsonl"]
