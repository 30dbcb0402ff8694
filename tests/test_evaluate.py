import json
import math

import pytest
import torch

from qeu_utils.core.records import RecordError, make_record
from qeu_utils.evaluation import evaluate as ev
from qeu_utils.evaluation import generation, heldout, scoring, tables
from qeu_utils.model.prompting import render


def rec(category, task, instruction, output, input="", style="", lang="ja>ja"):
    return make_record(category=category, task=task, instruction=instruction, input=input,
                       output=output, lang=lang, style=style, source="project")


# Real records of each category, as the init build makes them.
RECORDS = [
    rec("style", "plain_to_zh", "次の文を中国語に訳して。", "爸爸每天晚上用收音机听新闻。",
        input="父は毎晩ラジオでニュースを聞く。", style="plain", lang="ja>zh"),
    rec("style", "polite_to_en", "この日本語を英語に訳していただけますか。",
        "My father listens to the news on the radio every night.",
        input="父は毎晩ラジオでニュースを聞きます。", style="polite", lang="ja>en"),
    rec("style", "plain_to_polite", "この文を丁寧な言い方に直してください。",
        "春になると、桜の花が咲きます。", input="春になると、桜の花が咲く。", style="polite"),
    rec("kanji", "hans_to_ja", "簡体字の「觉」は、日本の漢字ではどう書きますか？", "覚",
        lang="zh-Hans>ja"),
    rec("kanji", "ja_to_hant", "「弁」の繁体字は何ですか？",
        "辨・辯・瓣・弁（意味によって字が異なります）", lang="ja>zh-Hant"),
    rec("country", "ja_to_en", "次の国名を英語にしてください。", "Solomon Islands",
        input="ソロモン諸島", lang="ja>en"),
    rec("katakana", "kana_to_hiragana", "カタカナの「ジ」をひらがなで書いてください。", "じ"),
    rec("food", "ja_to_hans", "料理「ブイヤベース」を中国語（簡体字）で書いてください。",
        "马赛鱼汤", lang="ja>zh-Hans"),
]


# --- metrics on known inputs ---------------------------------------------------------------


@pytest.mark.parametrize("answer, expected, first_line, hit", [
    ("覚", "覚", False, True),
    ("覚。", "覚", False, True),                       # trailing 。 dropped
    ("  Solomon   Islands. ", "Solomon Islands", False, True),  # whitespace, trailing .
    ("ＡＢＣ！", "ABC", False, True),                  # NFKC: full-width letters and ！
    ("ｼﾞ", "ジ", False, True),                          # NFKC: half-width katakana
    ("覚える", "覚", False, False),
    ("覚\n日本ではこう書きます。", "覚", False, False),
    ("覚\n日本ではこう書きます。", "覚", True, True),   # short answer on the first line
    ("日本では\n覚", "覚", True, False),
    ("辨・辯・瓣・弁", "辨・辯・瓣・弁（意味によって字が異なります）", False, True),
    ("意味により弁、辨、辯、瓣を使います", "辨・辯・瓣・弁（意味によって字が異なります）",
     False, True),
    ("辨・辯・弁", "辨・辯・瓣・弁（意味によって字が異なります）", False, False),
    ("辨・辯・瓣・弁（意味によって字が異なります）。",
     "辨・辯・瓣・弁（意味によって字が異なります）", False, True),
    # the plain note, which answers to plain instructions (「弁」の繁体字は何？), parses the same
    ("辨・辯・瓣・弁", "辨・辯・瓣・弁（意味によって字が異なる）", False, True),
    ("辨・辯・弁", "辨・辯・瓣・弁（意味によって字が異なる）", False, False),
    ("預・豫・予（意味によって字が異なる）", "預・豫・予（意味によって字が異なる）", False, True),
    ("刚果", "刚果（布）", False, False),               # a parenthesis alone is no ambiguity
    ("", "覚", True, False),
])
def test_exact_match(answer, expected, first_line, hit):
    assert scoring.exact_match(answer, expected, first_line=first_line) is hit


@pytest.mark.parametrize("text, chinese, english", [
    ("东京是日本的首都。", True, False),
    ("臺灣的鐵路很方便。", True, False),
    ("東京は日本の首都です。", False, False),
    ("東京", True, False),
    ("Tokyo is the capital of Japan.", False, True),
    ("My father listens to the news on the radio every night.", False, True),
    ("Tokyo（東京）is the capital.", True, False),   # Han and no kana counts as Chinese
    ("Ünïcödé façade", False, False),
    ("A café in Paris.", False, True),
    ("12345", False, False),
    ("", False, False),
])
def test_script_detection(text, chinese, english):
    assert scoring.is_chinese(text) is chinese
    assert scoring.is_english(text) is english


def test_has_style():
    assert scoring.has_style("春になると、桜の花が咲きます。", "polite")
    assert scoring.has_style("野菜は駅前の八百屋のほうが安い。", "plain")
    assert not scoring.has_style("野菜は駅前の八百屋のほうが安い。", "polite")


# --- probe on a stubbed generator --------------------------------------------------------

STYLE_RECORDS = [
    rec("style", "plain_to_zh", "次の文を中国語に訳して。", "东京是日本的首都。",
        input="東京は日本の首都だ。", style="plain", lang="ja>zh"),
    rec("style", "plain_to_zh", "中国語にして。", "我每天早上喝咖啡。",
        input="私は毎朝コーヒーを飲む。", style="plain", lang="ja>zh"),
    rec("style", "polite_to_en", "英語に訳してください。", "Tokyo is the capital of Japan.",
        input="東京は日本の首都です。", style="polite", lang="ja>en"),
    rec("style", "polite_to_en", "英語にしてください。", "It is raining today.",
        input="今日は雨が降っています。", style="polite", lang="ja>en"),
    rec("style", "zh_to_plain", "中国語を日本語（常体）に訳せ。", "東京は日本の首都だ。",
        input="东京是日本的首都。", style="plain", lang="zh>ja"),
    rec("style", "en_to_polite", "日本語に訳してください。です・ます調で。",
        "今日は雨が降っています。", input="It is raining today.", style="polite",
        lang="en>ja"),
    rec("style", "polite_to_plain", "常体に直して。", "富士山は高い。",
        input="富士山は高いです。", style="plain"),
    rec("style", "plain_to_polite", "丁寧に言い換えてください。", "富士山は高いです。",
        input="富士山は高い。", style="polite"),
]
STUB_ANSWERS = [
    "东京是日本的首都。",             # Chinese: yes
    "東京は日本の首都です。",          # Chinese: no (kana)
    "Tokyo is the capital of Japan.",  # English: yes
    "今日は雨です。",                  # English: no
    "東京は日本の首都だ。",            # plain: yes
    "今日は雨が降っている。",          # polite asked, plain given: no
    "富士山は高い。",                  # plain: yes
    "富士山は高いです。",              # polite: yes
]


def stub_generator(answers):
    calls = []

    def fake(model, tokenizer, records, **kwargs):
        calls.append([r["id"] for r in records])
        return [answers[r["id"]] for r in records]
    return fake, calls


def test_probe_compliance_from_stubbed_answers(monkeypatch):
    answers = {r["id"]: a for r, a in zip(STYLE_RECORDS, STUB_ANSWERS, strict=True)}
    fake, _ = stub_generator(answers)
    monkeypatch.setattr(ev, "generate_answers", fake)
    result = ev.probe(None, None, STYLE_RECORDS)
    c = result["compliance"]
    assert c["plain_to_zh"] == {"rate": 0.5, "n": 2, "hits": 1}
    assert c["polite_to_en"] == {"rate": 0.5, "n": 2, "hits": 1}
    assert c["zh_to_plain"] == {"rate": 1.0, "n": 1, "hits": 1}
    assert c["en_to_polite"] == {"rate": 0.0, "n": 1, "hits": 0}
    assert c["polite_to_plain"]["rate"] == c["plain_to_polite"]["rate"] == 1.0
    assert result["exact_match"] == {}
    assert [s["answer"] for s in result["samples"]] == STUB_ANSWERS
    assert result["samples"][0]["prompt"] == "次の文を中国語に訳して。\n\n東京は日本の首都だ。"


def test_probe_exact_match_and_limit(monkeypatch):
    extra = rec("kanji", "hans_to_ja", "次の簡体字を日本の漢字に直してください。", "発",
                input="发", lang="zh-Hans>ja")
    records = RECORDS + [extra]
    answers = {r["id"]: r["output"] for r in records}
    answers[RECORDS[4]["id"]] = "弁、辨、辯、瓣"          # ambiguous kanji: all forms given
    answers[RECORDS[5]["id"]] = "Solomon Islands\n(an island country)"  # first line
    answers[RECORDS[7]["id"]] = "马赛鱼汤\n法国菜"        # food: first line rule is off
    answers[extra["id"]] = "髪"
    fake, calls = stub_generator(answers)
    monkeypatch.setattr(ev, "generate_answers", fake)

    full = ev.probe(None, None, records)["exact_match"]
    assert full["overall"] == {"rate": 4 / 6, "n": 6, "hits": 4}
    assert full["kanji/hans_to_ja"] == {"rate": 0.5, "n": 2, "hits": 1}
    assert full["kanji/ja_to_hant"]["rate"] == full["country/ja_to_en"]["rate"] == 1.0
    assert full["food/ja_to_hans"]["rate"] == 0.0
    assert list(full)[0] == "overall"

    limited = ev.probe(None, None, records, limit=1)
    assert limited["exact_match"]["kanji/hans_to_ja"]["n"] == 1
    assert calls[-1] == [r["id"] for r in RECORDS]  # first per task, order kept
    assert len(limited["samples"]) == len(RECORDS)


def test_select_is_stable():
    a, b = RECORDS[3], rec("kanji", "hans_to_ja", "次の簡体字を日本の漢字に直してください。",
                           "発", input="发", lang="zh-Hans>ja")
    records = [a, RECORDS[0], b, RECORDS[1]]
    assert ev.select(records, 1) == [a, RECORDS[0], RECORDS[1]]
    assert ev.select(records) == [a, b, RECORDS[0], RECORDS[1]]


# --- held-out loss -----------------------------------------------------------------------


def manual_loss(model, tokenizer, record, template):
    """-sum log p(completion tokens) / count, one record, no batching."""
    prompt, completion = render(record, tokenizer, template)
    special = template != "chat"
    prompt_ids = tokenizer(prompt, add_special_tokens=special)["input_ids"]
    ids = tokenizer(prompt + completion, add_special_tokens=special)["input_ids"]
    assert ids[:len(prompt_ids)] == prompt_ids
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    nll = [-logp[pos - 1, ids[pos]].item() for pos in range(len(prompt_ids), len(ids))]
    return sum(nll) / len(nll), len(nll), completion


@pytest.mark.parametrize("template", ["chat", "alpaca"])
def test_heldout_loss_masks_the_prompt(tiny, template):
    model, tokenizer = tiny
    record = RECORDS[0]
    expected, count, completion = manual_loss(model, tokenizer, record, template)
    result = heldout.heldout_loss(model, tokenizer, [record], template=template)
    assert result["overall"]["tokens"] == count
    assert result["overall"]["tokens"] == len(tokenizer(completion, add_special_tokens=False)
                                              ["input_ids"])
    assert result["overall"]["loss"] == pytest.approx(expected, abs=1e-5)
    assert result["overall"]["perplexity"] == pytest.approx(math.exp(expected), rel=1e-5)
    assert result["by_category"]["style"]["loss"] == pytest.approx(expected, abs=1e-5)

    # A different prompt ending (and a longer prompt) leaves the labelled tokens unchanged.
    changed = rec("style", "plain_to_zh", "次の文を中国語に訳してください！", record["output"],
                  input=record["input"] + "ね", style="plain", lang="ja>zh")
    other = heldout.heldout_loss(model, tokenizer, [changed], template=template)
    assert other["overall"]["tokens"] == count
    assert other["overall"]["loss"] != pytest.approx(expected, abs=1e-9)


def test_heldout_loss_does_not_depend_on_batch_size(tiny):
    model, tokenizer = tiny
    one = heldout.heldout_loss(model, tokenizer, RECORDS, batch_size=1)
    four = heldout.heldout_loss(model, tokenizer, RECORDS, batch_size=4)
    assert one["overall"]["tokens"] == four["overall"]["tokens"]
    assert one["overall"]["loss"] == pytest.approx(four["overall"]["loss"], abs=1e-5)
    for category, entry in one["by_category"].items():
        assert entry["loss"] == pytest.approx(four["by_category"][category]["loss"], abs=1e-5)
    assert model.training is False


def test_heldout_loss_per_category_is_token_weighted(tiny):
    model, tokenizer = tiny
    result = heldout.heldout_loss(model, tokenizer, RECORDS, batch_size=3)
    cats = result["by_category"]
    assert set(cats) == {"style", "kanji", "country", "katakana", "food"}
    assert cats["style"]["records"] == 3
    total = sum(c["tokens"] for c in cats.values())
    assert total == result["overall"]["tokens"]
    weighted = sum(c["loss"] * c["tokens"] for c in cats.values()) / total
    assert result["overall"]["loss"] == pytest.approx(weighted, abs=1e-9)
    kanji = [r for r in RECORDS if r["category"] == "kanji"]
    alone = heldout.heldout_loss(model, tokenizer, kanji)["overall"]
    assert alone["loss"] == pytest.approx(cats["kanji"]["loss"], abs=1e-5)
    assert alone["tokens"] == cats["kanji"]["tokens"]


# --- generation --------------------------------------------------------------------------


def test_generate_answers_left_pads_and_matches_unbatched(tiny, monkeypatch):
    model, tokenizer = tiny
    seen = []
    original = model.generate

    def spy(*args, **kwargs):
        seen.append((kwargs["input_ids"].clone(), kwargs["attention_mask"].clone()))
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", spy)
    batched = generation.generate_answers(model, tokenizer, RECORDS, max_new_tokens=6, batch_size=4)
    assert len(batched) == len(RECORDS) and all(isinstance(a, str) for a in batched)
    for ids, mask in seen:
        assert mask[:, -1].all()                      # every prompt ends at the right edge
        assert (mask[:, 0] == 0).any()                # shorter prompts are padded on the left
        assert (ids[mask == 0] == tokenizer.pad_token_id).all()
    single = generation.generate_answers(model, tokenizer, RECORDS, max_new_tokens=6, batch_size=1)
    assert batched == single
    assert all(a == a.strip() and "<|im_end|>" not in a for a in batched)


def test_generate_answers_decodes_only_new_tokens(tiny, monkeypatch):
    model, tokenizer = tiny
    reply = tokenizer(" 东京 ", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

    def fake_generate(input_ids, attention_mask, **kwargs):
        tail = torch.tensor([reply] * input_ids.shape[0])
        return torch.cat([input_ids, tail], dim=1)

    monkeypatch.setattr(model, "generate", fake_generate)
    finished = []
    assert generation.generate_answers(model, tokenizer, RECORDS[:3],
                                       finished=finished) == ["东京"] * 3
    assert finished == [True] * 3  # the answer ended with the end token

    # max_new_tokens can cut a character in half: its first byte must not show up as U+FFFD.
    cut = tokenizer(" 东京", add_special_tokens=False)["input_ids"]
    cut += tokenizer("龍", add_special_tokens=False)["input_ids"][:1]  # not in the BPE sample
    reply[:] = cut
    assert tokenizer.decode(cut).endswith("\ufffd")
    assert generation.generate_answers(model, tokenizer, RECORDS[:1], finished=finished) == \
        ["东京"]
    assert finished == [False]  # cut off by max_new_tokens, no end token


# --- whole evaluation, reports, errors ---------------------------------------------------


def test_evaluate_compare_side_by_side_and_save(tiny, tmp_path):
    model, tokenizer = tiny
    before = ev.evaluate(model, tokenizer, RECORDS, max_new_tokens=4)
    assert before["template"] == "chat" and before["records"] == len(RECORDS)
    assert set(before) >= {"loss", "exact_match", "compliance", "samples"}
    after = json.loads(json.dumps(before))
    after["loss"]["overall"]["loss"] = 1.5
    after["loss"]["overall"]["perplexity"] = math.exp(1.5)
    after["exact_match"]["overall"] = {"rate": 0.5, "n": 5, "hits": 2.5}
    after["samples"][0]["answer"] = "爸爸每天晚上听新闻。"

    table = tables.compare(before, after)
    assert "| metric | before | after | change |" in table
    for name in ["loss (overall)", "perplexity (overall)", "loss: kanji", "loss: style",
                 "exact match: overall", "exact match: kanji/ja_to_hant",
                 "compliance: plain_to_zh", "compliance: polite_to_en"]:
        assert f"| {name} |" in table
    assert f"{before['loss']['overall']['loss']:.4f}" in table
    assert "| 1.5000 |" in table and "4.4817" in table
    assert "50.0%" in table

    sbs = tables.side_by_side(before, after, n=3)
    assert sbs.count("\n") == 2 + 3
    assert "爸爸每天晚上听新闻。" in sbs and "次の文を中国語に訳して。<br><br>" in sbs

    path = tables.save_results(before, tmp_path / "out" / "before.json")
    text = path.read_text(encoding="utf-8")
    assert "次の文を中国語に訳して。" in text and json.loads(text) == before


def test_empty_records_error(tiny):
    model, tokenizer = tiny
    for fn in (heldout.heldout_loss, generation.generate_answers, ev.probe, ev.evaluate):
        with pytest.raises(ValueError, match="no records to evaluate"):
            fn(model, tokenizer, [])


def test_invalid_record_error(tiny):
    model, tokenizer = tiny
    broken = dict(RECORDS[0], output="")
    with pytest.raises(RecordError, match=r"records\[1\]: field 'output' is empty"):
        heldout.heldout_loss(model, tokenizer, [RECORDS[1], broken])


def test_heldout_loss_per_record_matches_each_record_alone(tiny):
    model, tokenizer = tiny
    result = heldout.heldout_loss(model, tokenizer, RECORDS, batch_size=3, per_record=True)
    rows = result["per_record"]
    assert len(rows) == len(RECORDS)
    assert sum(r["tokens"] for r in rows) == result["overall"]["tokens"]
    for record, row in zip(RECORDS[:3], rows[:3], strict=True):
        alone = heldout.heldout_loss(model, tokenizer, [record])["overall"]
        assert row["tokens"] == alone["tokens"]
        assert row["nll"] / row["tokens"] == pytest.approx(alone["loss"], abs=1e-5)
    assert "per_record" not in heldout.heldout_loss(model, tokenizer, RECORDS[:1])


def test_progress_bars_change_nothing_but_the_log(tiny, capsys):
    model, tokenizer = tiny
    quiet = generation.generate_answers(model, tokenizer, RECORDS[:3], max_new_tokens=3)
    loud = generation.generate_answers(model, tokenizer, RECORDS[:3], max_new_tokens=3,
                                       progress="probes")
    assert quiet == loud
    assert "probes" in capsys.readouterr().err


def test_compliant_is_public_and_refuses_tasks_without_a_rule():
    zh = next(r for r in RECORDS if r["task"] == "plain_to_zh")
    assert scoring.compliant(zh, "我是学生。") and not scoring.compliant(zh, "私は学生だ。")
    with pytest.raises(ValueError, match="no compliance rule"):
        scoring.compliant(RECORDS[3] | {"task": "ja_to_hans"}, "铁")
