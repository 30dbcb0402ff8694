"""The control conditions' stage-1 data, on the real initialization set: C-changed deranges only
the pairs whose answer differs from the question; C-swap reverses the style ⇄ language rule."""

from collections import Counter, defaultdict

import pytest

from qeu_utils.core.records import make_record
from qeu_utils.experiment.controls import (
    asked_form,
    condition_records,
    derange_changed,
    is_changed,
    swap_instruction,
)


@pytest.fixture(scope="module")
def init():
    from qeu_utils.builders.mix import build_init

    train, _ = build_init(size=300, seed=0)
    conditions, report = condition_records(train, seed=0)
    return train, conditions, report


def test_every_condition_has_the_same_records_count_and_order(init):
    train, conditions, _ = init
    assert set(conditions) == {"B", "C-changed", "C-swap"}
    assert conditions["B"] is train
    for records in conditions.values():
        assert len(records) == len(train)
        assert [r["category"] for r in records] == [r["category"] for r in train]


def test_c_changed_keeps_identity_pairs_and_deranges_the_others(init):
    train, conditions, report = init
    changed = conditions["C-changed"]
    identity = [(b, c) for b, c in zip(train, changed, strict=True) if not is_changed(b)]
    assert len(identity) >= 25  # 分 → 分 and its kind: the copy habit B teaches
    assert all(b == c for b, c in identity)
    assert any(b["output"] == "分" for b, _ in identity)
    pairs = [(b, c) for b, c in zip(train, changed, strict=True) if is_changed(b)]
    kept = [b for b, c in pairs if b["output"] == c["output"]]
    # no changed pair keeps its answer, unless its task has no other answer to take (a task
    # of one record), which the report says
    assert len(kept) <= 1
    assert all(report["C-changed"][f"{b['category']}/{b['task']}"]["records"] == 1
               for b in kept)
    assert all(b["task"] == c["task"] and b["instruction"] == c["instruction"]
               and b["input"] == c["input"] for b, c in pairs)
    answers = defaultdict(lambda: (Counter(), Counter()))  # the same answers, redistributed
    for b, c in pairs:
        answers[b["task"]][0][b["output"]] += 1
        answers[b["task"]][1][c["output"]] += 1
    assert all(before == after for before, after in answers.values())
    assert all(e["kept_own_answer"] == 0 for e in report["C-changed"].values()
               if e["deranged"] + e["kept_own_answer"] > 1)
    assert sum(e["deranged"] for e in report["C-changed"].values()) == len(pairs) - len(kept)
    assert sum(e["identity"] for e in report["C-changed"].values()) == len(identity)


def test_c_swap_pairs_plain_with_english_and_polite_with_chinese(init):
    from qeu_utils.evaluation.scoring import is_chinese, is_english
    from qeu_utils.text.style_detect import Style, detect_style

    train, conditions, report = init
    swapped = conditions["C-swap"]
    by_task = defaultdict(list)
    for b, s in zip(train, swapped, strict=True):
        by_task[s["task"]].append((b, s))
        if b["category"] != "style" or b["task"] in ("plain_to_polite", "polite_to_plain"):
            assert s == b  # kanji, country, katakana, food and the register tasks: identical
    assert {"plain_to_en", "polite_to_zh", "en_to_plain", "zh_to_polite"} <= set(by_task)
    assert not {"plain_to_zh", "polite_to_en", "zh_to_plain", "en_to_polite"} & set(by_task)
    for b, s in by_task["plain_to_en"]:  # the plain sentence, now answered in English
        assert s["input"] == b["input"] and detect_style(s["input"]) == Style.PLAIN
        assert is_english(s["output"]) and "英語" in s["instruction"]
        assert s["instruction"] == b["instruction"].replace("中国語", "英語")  # still plain
    for b, s in by_task["polite_to_zh"]:  # the polite sentence, now answered in Chinese
        assert s["input"] == b["input"] and detect_style(s["input"]) == Style.POLITE
        assert is_chinese(s["output"]) and "中国語" in s["instruction"]
        assert s["instruction"].endswith(("ください。", "ますか。"))
    for _, s in by_task["en_to_plain"]:
        assert is_english(s["input"]) and detect_style(s["output"]) == Style.PLAIN
    for _, s in by_task["zh_to_polite"]:
        assert is_chinese(s["input"]) and detect_style(s["output"]) == Style.POLITE
    assert sum(report["C-swap"].values()) == sum(
        b["task"] in ("plain_to_zh", "polite_to_en", "zh_to_plain", "en_to_polite")
        for b in train)


def test_swap_instruction_swaps_the_language_and_keeps_the_register():
    assert swap_instruction("中国語に翻訳して。") == "英語に翻訳して。"
    assert swap_instruction("英語に訳してください。") == "中国語に訳してください。"
    assert swap_instruction("次の英文を日本語に訳してください。です・ます調でお願いします。") == \
        "次の中国語を日本語に訳してください。です・ます調でお願いします。"
    with pytest.raises(ValueError, match="names neither"):
        swap_instruction("この文を普通体に直して。")


def _record(task, output, n, question=None):
    instruction = f"「{question}」を書いて。" if question else f"q{n}"
    return make_record(category="kanji", task=task, instruction=instruction, output=output,
                       lang="ja>zh", source="test")


def test_derange_changed_on_small_tasks():
    records = [_record("a", out, i) for i, out in enumerate("甲乙丙丁戊己庚辛")]
    records += [_record("a", "山", 9, question="山")]  # an identity pair in the same task
    records += [_record("b", "同", 10 + i) for i in range(3)]  # every answer identical
    records += [_record("c", out, 20 + i) for i, out in enumerate("xxyz")]  # a duplicate
    records += [_record("d", out, 30 + i) for i, out in enumerate("xxxy")]  # a dominant one
    result, report = derange_changed(records, seed=0)
    assert [r["instruction"] for r in result] == [r["instruction"] for r in records]
    assert result[8] == records[8] and asked_form(records[8]) == "山"
    assert all(b["output"] != a["output"] for b, a in zip(records[:8], result[:8], strict=True))
    assert report["kanji/a"] == {"records": 9, "identity": 1, "deranged": 8,
                                 "kept_own_answer": 0, "note": ""}
    assert report["kanji/b"]["kept_own_answer"] == 3 and "nothing to swap" in \
        report["kanji/b"]["note"]
    assert report["kanji/c"]["kept_own_answer"] == 0
    assert report["kanji/d"]["kept_own_answer"] >= 2  # 3 × x among 4: 2 must keep an x
    assert derange_changed(records, seed=0)[0] == result
    assert derange_changed(records, seed=1)[0] != result
