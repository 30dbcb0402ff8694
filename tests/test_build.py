"""Dataset builders: sources, the kanji ambiguity rule, the style checks, the mix."""

import json
from collections import Counter

import pytest

from qeu_utils.builders.country import build_country
from qeu_utils.builders.food import build_food
from qeu_utils.builders.kanji import build_kanji
from qeu_utils.core.records import validate
from qeu_utils.text.sources import SourceError, read_dishes


def _by_task(groups, key):
    (group,) = [g for g in groups if g.key == key]
    return {r["task"]: r for r in group.records}


@pytest.fixture(scope="module")
def kanji_groups():
    return build_kanji(seed=0)


def test_kanji_forms_that_differ_get_all_four_tasks(kanji_groups):
    tetsu = _by_task(kanji_groups, "鉄")
    assert {t: r["output"] for t, r in tetsu.items()} == {
        "ja_to_hans": "铁",
        "ja_to_hant": "鐵",
        "hans_to_ja": "鉄",
        "hant_to_ja": "鉄",
    }
    assert "铁" in tetsu["hans_to_ja"]["instruction"] + tetsu["hans_to_ja"]["input"]
    assert set(_by_task(kanji_groups, "山")) == {"ja_to_hans"}
    assert len(kanji_groups) == 2136


# The note on an answer naming several forms, plain after a plain instruction (the tasks
# answered in Chinese), polite after a polite one.
PLAIN_NOTE = "（意味によって字が異なる）"
POLITE_NOTE = "（意味によって字が異なります）"


def test_ambiguous_kanji_carry_every_candidate(kanji_groups):
    ben = _by_task(kanji_groups, "弁")
    assert ben["ja_to_hant"]["output"] == "辨・辯・瓣・弁" + PLAIN_NOTE
    assert ben["ja_to_hans"]["output"] == "辨・辩・瓣・弁" + PLAIN_NOTE
    assert _by_task(kanji_groups, "芸")["ja_to_hans"]["output"] == "艺・芸" + PLAIN_NOTE
    # 臺 and 台 both simplify to 台: one Simplified answer, two Traditional ones.
    dai = _by_task(kanji_groups, "台")
    assert dai["ja_to_hans"]["output"] == "台"
    assert dai["ja_to_hant"]["output"] == "臺・台" + PLAIN_NOTE


def test_a_simplified_form_shared_by_two_kanji_names_both(kanji_groups):
    asked = [
        r
        for g in kanji_groups
        for r in g.records
        if r["task"] == "hans_to_ja" and "发" in r["instruction"] + r["input"]
    ]
    assert [r["output"] for r in asked] == ["発・髪" + POLITE_NOTE]  # asked once, not per kanji
    assert "hans_to_ja" not in _by_task(kanji_groups, "髪")


def test_the_note_is_in_the_register_of_its_instruction(kanji_groups):
    from qeu_utils.text.style_detect import detect_style

    man = _by_task(kanji_groups, "万")["ja_to_hant"]
    assert (man["instruction"], man["output"]) == ("「万」の繁体字は何？", "萬・万" + PLAIN_NOTE)
    assert detect_style(man["instruction"]).value == "plain"
    seen = Counter()
    for r in (r for g in kanji_groups for r in g.records):
        for note, style in ((PLAIN_NOTE, "plain"), (POLITE_NOTE, "polite")):
            if r["output"].endswith(note):
                assert detect_style(r["instruction"]).value == style, r
                seen[r["task"], style] += 1
    assert set(seen) == {("ja_to_hans", "plain"), ("ja_to_hant", "plain"),
                         ("hans_to_ja", "polite"), ("hant_to_ja", "polite")}


def test_kanji_opencc_gets_wrong_reach_the_records(kanji_groups):
    yo = _by_task(kanji_groups, "予")
    assert yo["ja_to_hans"]["output"] == "预・豫・予" + PLAIN_NOTE
    assert yo["ja_to_hant"]["output"] == "預・豫・予" + PLAIN_NOTE
    # 预 is also the Simplified form of the Jōyō 預 (預言 → 预言)
    assert yo["hans_to_ja"]["output"] == "予・預" + POLITE_NOTE
    assert {t: r["output"] for t, r in _by_task(kanji_groups, "鉱").items()} == {
        "ja_to_hans": "矿", "ja_to_hant": "礦", "hans_to_ja": "鉱", "hant_to_ja": "鉱"}
    assert _by_task(kanji_groups, "娯")["ja_to_hans"]["output"] == "娱"
    # 棋 is the Jōyō 棋 (将棋) and 碁 (囲碁 → 围棋)
    assert _by_task(kanji_groups, "碁")["hans_to_ja"]["output"] == "棋・碁" + POLITE_NOTE


def test_no_single_answer_is_a_wrong_form_for_ambiguous_kanji(kanji_groups):
    from qeu_utils.text.kanji import variants

    for g in kanji_groups:
        v = variants(g.key)
        if v.ambiguous:
            hant = _by_task(kanji_groups, g.key).get("ja_to_hant")
            if hant:
                assert all(c in hant["output"] for c in v.candidates), g.key


def test_country_records_both_ways():
    jp = _by_task(build_country(seed=0), "JP")
    assert {t: r["output"] for t, r in jp.items()} == {
        "ja_to_en": "Japan",
        "en_to_ja": "日本",
        "ja_to_hans": "日本",
        "hans_to_ja": "日本",
        "ja_to_hant": "日本",
        "hant_to_ja": "日本",
    }
    cd = _by_task(build_country(seed=0), "CD")
    assert cd["ja_to_en"]["output"] == "Democratic Republic of the Congo"
    assert cd["ja_to_hans"]["output"] == "刚果民主共和国"
    assert _by_task(build_country(seed=0), "PS")["ja_to_en"]["output"] == "Palestine"
    us = _by_task(build_country(seed=0), "US")
    assert us["hans_to_ja"]["output"] == "アメリカ合衆国"
    assert "美国" in us["hans_to_ja"]["instruction"] + us["hans_to_ja"]["input"]


def test_food_crosses_languages_and_borders():
    groups = build_food(seed=0)
    assert len(groups) >= 100
    pizza = _by_task(groups, "pizza")
    assert pizza["ja_to_en"]["output"] == "pizza"
    assert pizza["origin"]["style"] == "polite"
    # every origin answer answers the question it is paired with
    origins = Counter((r["instruction"].split("」")[-1], r["output"].removeprefix(d))
                      for g, d in zip(groups, [x["country_ja"] for x in read_dishes()],
                                      strict=True)
                      for r in g.records if r["task"] == "origin")
    assert set(origins) == {("はどこの国の料理ですか？", "の料理です。"),
                            ("の発祥の国はどこですか？", "です。")}
    assert sum(origins.values()) == 173
    ramen = _by_task(groups, "ramen")
    assert (ramen["origin"]["instruction"], ramen["origin"]["output"]) in {
        ("「ラーメン」はどこの国の料理ですか？", "日本の料理です。"),
        ("「ラーメン」の発祥の国はどこですか？", "日本です。"),
    }
    assert len({d["country"] for d in read_dishes()}) >= 10


def test_bad_dish_rows_name_the_line(tmp_path):
    path = tmp_path / "dishes.tsv"
    header = "ja\ten\tzh_hans\tzh_hant\tcountry\n"
    path.write_text(header + "寿司\tsushi\t寿司\t壽司\tJP\nピザ\tpizza\t披萨\t披薩\tXX\n", "utf-8")
    with pytest.raises(SourceError, match=r"dishes.tsv:3: unknown country code 'XX'"):
        build_food(path=path)
    path.write_text(header + "寿司\tsushi\t寿司\tJP\n", "utf-8")
    with pytest.raises(SourceError, match=r"dishes.tsv:2: 4 fields, expected 5"):
        build_food(path=path)
    path.write_text("ja\ten\n", "utf-8")
    with pytest.raises(SourceError, match=r"dishes.tsv:1: header is"):
        build_food(path=path)
    path.write_text(header + "寿司\t \t寿司\t壽司\tJP\n", "utf-8")
    with pytest.raises(SourceError, match=r"dishes.tsv:2: empty field\(s\) en"):
        build_food(path=path)


def test_templates_vary_but_are_fixed_by_the_seed():
    a = [r["instruction"] for g in build_country(seed=0) for r in g.records]
    b = [r["instruction"] for g in build_country(seed=0) for r in g.records]
    c = [r["instruction"] for g in build_country(seed=1) for r in g.records]
    assert a == b and a != c
    assert len(set(a)) > 6


def test_every_record_validates():
    for groups in (build_country(seed=0), build_food(seed=0)):
        for g in groups:
            for r in g.records:
                validate(r)


# --- the style source and the mix ---------------------------------------------------------

STYLE_HEADER = "plain\tpolite\tzh\ten\ttopic\tgrammar\n"


def test_trilingual_rows_are_checked_against_the_style_tools(tmp_path):
    from qeu_utils.builders.style import build_style

    path = tmp_path / "tri.tsv"
    ok = "\t".join(["東京は日本の首都だ。", "東京は日本の首都です。", "东京是日本的首都。",
                    "Tokyo is the capital of Japan.", "geography", "copula\n"])
    path.write_text(STYLE_HEADER + ok, "utf-8")
    (group,) = build_style(path=path)
    tasks = {r["task"]: r for r in group.records}
    assert tasks["plain_to_zh"]["output"] == "东京是日本的首都。"
    assert tasks["plain_to_zh"]["style"] == "plain" and tasks["polite_to_en"]["style"] == "polite"
    assert tasks["zh_to_plain"]["output"] == "東京は日本の首都だ。"
    assert tasks["en_to_polite"]["output"] == "東京は日本の首都です。"

    swapped = "\t".join(["東京は日本の首都です。", "東京は日本の首都だ。", "东京是日本的首都。",
                         "Tokyo.", "geography", "copula\n"])
    path.write_text(STYLE_HEADER + ok + swapped, "utf-8")
    with pytest.raises(
        SourceError,
        match=r"tri.tsv:3: column 'plain' .* detects as 'polite', expected 'plain'",
    ):
        build_style(path=path)

    wrong_polite = "本を読んだ。\t本を読みます。\t我读了书。\tI read a book.\tdaily\tverb_past\n"
    path.write_text(STYLE_HEADER + wrong_polite, "utf-8")
    with pytest.raises(
        SourceError,
        match=r"tri.tsv:2: to_polite\('本を読んだ。'\) gives "
        r"'本を読みました。', but the polite column says",
    ):
        build_style(path=path)


def test_the_shipped_trilingual_file_passes_its_checks():
    from qeu_utils.builders.style import build_style

    groups = build_style()
    assert len(groups) == 440
    assert all(len(g.records) == 6 for g in groups)


def test_trilingual_covers_the_forms_the_converters_must_handle():
    from qeu_utils.text.sources import read_trilingual

    rows = read_trilingual()
    tags = Counter(r["grammar"] for r in rows)
    for form in ("causative", "giving", "sonkeigo", "kenjougo", "evidential", "experience",
                 "conjecture", "de_aru", "passive", "conditional", "te_iru"):
        assert tags[form] >= 5, form
    assert "progressive" not in tags  # 知っている is a state, not progress: te_iru
    assert sum(r["plain"].endswith("？") for r in rows) == 33
    # plain requests are the neutral て-form, not blunt 〜てくれ / 〜ないか
    blunt = ("てくれ。", "でくれ。", "ないか？")
    assert not [r["plain"] for r in rows if r["plain"].endswith(blunt)]
    assert not [r["en"] for r in rows if "at the weekend" in r["en"]]


def test_katakana_category_has_table_loanwords_and_annotation():
    from qeu_utils.builders.katakana import build_katakana

    records = [r for g in build_katakana() for r in g.records]
    tasks = Counter(r["task"] for r in records)
    assert tasks["kana_to_hiragana"] == 114 and tasks["hiragana_to_kana"] == 114
    by_key = {(r["task"], r["output"]): r for r in records}
    assert ("loanword_to_en", "coffee") in by_key
    assert ("en_to_loanword", "コーヒー") in by_key
    assert ("loanword_to_en", "Arbeit") not in by_key
    annotated = [r for r in records if r["task"] == "annotate_loanwords"]
    assert annotated and all("(" in r["output"] for r in annotated)
    # the instruction asks for the brackets the answer uses, and never calls パン's gloss
    # (bread) its "original English"
    wordings = {r["instruction"] for r in annotated}
    assert len(wordings) == 2 and not [w for w in wordings if "（）" in w or "元の英語" in w]
    assert {r["lang"] for r in records if r["task"] == "kana_to_romaji"} == {"ja>ja-Latn"}


def test_loanword_questions_ask_for_the_english_meaning_politely():
    from qeu_utils.builders.katakana import build_katakana
    from qeu_utils.text.style_detect import detect_style

    records = {(g.key, r["task"]): r for g in build_katakana() for r in g.records}
    asked = {key: (r["instruction"], r["output"]) for key, r in records.items()
             if r["task"] in ("loanword_to_en", "en_to_loanword")}
    # a real English phrase, not "sundubu Korean stew" (JMdict pieces strung together)
    assert asked["word:スンドゥブチゲ", "loanword_to_en"] == (
        "「スンドゥブチゲ」を英語で言うと何ですか？", "soft tofu stew")
    assert asked["word:キムチチゲ", "loanword_to_en"][1] == "kimchi stew"
    assert asked["word:フォー", "loanword_to_en"][1] == "pho"
    # カルテ is German: the question asks for the katakana word meaning the English
    assert asked["word:カルテ", "en_to_loanword"] == (
        "「patient's chart」を表すカタカナ語は何ですか？", "カルテ")
    assert asked["word:アルバイト", "en_to_loanword"] == (
        "英語の「part-time job」は、日本語のカタカナ語で何と言いますか？", "アルバイト")
    instructions = {i for i, _ in asked.values()}
    assert not [i for i in instructions if "カタカナ語にして" in i or "の英語を答え" in i]
    assert {detect_style(i).value for i in instructions} == {"polite"}


@pytest.fixture(scope="module")
def default_build():
    from qeu_utils.builders.mix import build_init

    return build_init(size=300, seed=0)


@pytest.fixture(scope="module")
def full_build():
    from qeu_utils.builders.mix import build_init

    return build_init(size=None, seed=0)


@pytest.mark.parametrize("build", ["default_build", "full_build"])
def test_instructions_carry_the_style_link(build, request):
    # README: tasks answered in Chinese are asked in plain Japanese, tasks answered in English
    # politely; in every category, in the default build and in --size all.
    from qeu_utils.builders.mix import instruction_style_lines, instruction_styles

    train, held_out = request.getfixturevalue(build)
    shares = instruction_styles(train + held_out)
    assert {(c, a) for c, a, _, _ in shares} == {
        ("country", "en"), ("country", "zh"), ("food", "en"), ("food", "zh"), ("kanji", "zh"),
        ("katakana", "en"), ("style", "en"), ("style", "zh")}
    assert all(linked == n > 0 for _, _, linked, n in shares), shares
    if build == "full_build":
        assert "| kanji | Chinese | plain Japanese | 2965/2965 (100%) |" in (
            instruction_style_lines(train + held_out))


def test_default_mix_has_every_category_in_train_and_eval(default_build):
    train, held_out = default_build
    assert len(train) + len(held_out) == 300
    assert set(Counter(r["category"] for r in train)) == {
        "style",
        "katakana",
        "country",
        "kanji",
        "food",
    }
    assert set(Counter(r["category"] for r in held_out)) == {
        "style",
        "katakana",
        "country",
        "kanji",
        "food",
    }


def test_eval_never_shares_an_item_with_train(default_build):
    train, held_out = default_build
    assert not {r["id"] for r in train} & {r["id"] for r in held_out}
    # Item level: no eval style record uses a sentence that a train record uses.
    train_texts = {r["input"] for r in train if r["category"] == "style"} | {
        r["output"] for r in train if r["category"] == "style"
    }
    for r in held_out:
        if r["category"] == "style" and r["task"] == "plain_to_zh":
            assert r["input"] not in train_texts


def _split_clash(seed):
    """Record ids in both train and eval, or twice on one side, for both sizes of one seed."""
    from qeu_utils.builders.mix import build_init, builders

    groups = {c: build(seed) for c, build in builders().items()}
    found = []
    for size in (300, None):
        train, held_out = build_init(size=size, seed=seed, groups=groups)
        ids = [r["id"] for r in train], [r["id"] for r in held_out]
        found += [(seed, size, "both", i) for i in set(ids[0]) & set(ids[1])]
        found += [(seed, size, "twice", i) for side in ids for i, n in Counter(side).items()
                  if n > 1]
    return found


def test_two_source_rows_that_make_one_record_land_on_one_side():
    # Seed 7 split 「富士山は日本でいちばん高い山だ。」 and 「…である。」 apart; both make the
    # polite record 「富士山は日本でいちばん高い山です。」 → English, so it was on both sides.
    from qeu_utils.builders.common import merge_shared
    from qeu_utils.builders.style import build_style

    groups = build_style(7)
    merged = merge_shared(groups)
    (fuji,) = [g for g in merged if "富士山は日本でいちばん高い山だ。" in
               {r["input"] for r in g.records}]
    assert "富士山は日本でいちばん高い山である。" in {r["input"] for r in fuji.records}
    ids = [r["id"] for g in merged for r in g.records]
    assert len(ids) == len(set(ids))
    assert set(ids) == {r["id"] for g in groups for r in g.records}
    assert _split_clash(7) == []


@pytest.mark.slow
def test_the_split_is_clean_for_seeds_0_to_50_and_both_sizes():
    assert [clash for seed in range(51) for clash in _split_clash(seed)] == []


def test_same_arguments_same_bytes_and_no_silent_overwrite(tmp_path):
    from qeu_utils.builders.mix import build_init, write_init

    for name in ("a", "b"):
        train, held_out = build_init(size=120, seed=3)
        write_init(tmp_path / name, train, held_out, seed=3, size=120)
    for f in ("train.jsonl", "eval.jsonl", "README.md", "dataset_info.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    before = (tmp_path / "a" / "train.jsonl").read_bytes()
    with pytest.raises(FileExistsError, match="pass --overwrite to replace it"):
        write_init(tmp_path / "a", [], [], seed=0, size=0)
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == before
    other, _ = build_init(size=120, seed=4)
    assert [r["id"] for r in other] != [r["id"] for r in build_init(size=120, seed=3)[0]]


def test_outputs_load_as_datasets_and_in_llama_factory_layout(tmp_path):
    from datasets import load_from_disk

    from qeu_utils.builders.mix import build_init, write_init
    from qeu_utils.core.records import read_jsonl

    train, held_out = build_init(size=60, seed=0, categories=["kanji", "country"])
    out = write_init(tmp_path / "init", train, held_out, seed=0, size=60)
    assert read_jsonl(out / "train.jsonl") == train
    ds = load_from_disk(str(out / "hf"))
    assert ds["train"].num_rows == len(train) and ds["eval"].num_rows == len(held_out)
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["qeu_init_train"] == {
        "file_name": "train.jsonl",
        "formatting": "alpaca",
        "columns": {"prompt": "instruction", "query": "input", "response": "output"},
    }
    card = (out / "README.md").read_text()
    assert "| kanji |" in card and "| country |" in card and "language: [ja, zh, en]" in card


def test_bad_mix_arguments_are_named():
    from qeu_utils.builders.mix import build_init, quotas

    with pytest.raises(ValueError, match=r"unknown categories \['poems'\]"):
        build_init(categories=["poems"])
    with pytest.raises(ValueError, match="too small"):
        build_init(size=3)
    assert quotas(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert sum(quotas(300, {"a": 0.35, "b": 0.2, "c": 0.15, "d": 0.2, "e": 0.1}).values()) == 300


def test_push_to_hub_uploads_only_the_build_with_the_env_token(tmp_path, fake_hub, capsys):
    from qeu_utils.builders.mix import build_init, push_to_hub, write_init

    calls = fake_hub
    train, held_out = build_init(size=40, seed=0, categories=["country", "food"])
    out = write_init(tmp_path / "init", train, held_out, seed=0, size=40)
    url = push_to_hub(out, "someone/qeu-init")
    assert url == "https://huggingface.co/datasets/someone/qeu-init"
    assert calls["token"] == "hf_secret_value"
    assert calls["create"] == ("someone/qeu-init",
                               {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert calls["upload"]["allow_patterns"] == ["*.jsonl", "README.md", "dataset_info.json"]
    assert "hf_secret_value" not in capsys.readouterr().out


def test_articles_become_continuation_records():
    from qeu_utils.builders.custom import article_records, paragraphs

    article = ("日本で最初の鉄道は1872年に開業した。新橋と横浜を結んだ。\n\n"
               "その後、鉄道は全国に広がりました。\n\n今では新幹線が各地を結んでいる。")
    records = article_records(article, title="日本の鉄道")
    assert [r["task"] for r in records] == ["write_opening", "continue_article",
                                             "continue_article"]
    assert records[0]["output"] == "日本で最初の鉄道は1872年に開業した。新橋と横浜を結んだ。"
    assert records[1]["input"] == records[0]["output"]
    assert [r["style"] for r in records] == ["plain", "polite", "plain"]
    assert {r["category"] for r in records} == {"custom"}
    one_block = "一文目だ。二文目だ。三文目だ。四文目だ。"
    assert paragraphs(one_block) == ["一文目だ。二文目だ。三文目だ。", "四文目だ。"]
    with pytest.raises(ValueError, match="has no text"):
        article_records("  \n\n ", title="空")
    with pytest.raises(ValueError, match="the title is empty"):
        article_records(article, title=" ")


def test_parts_round_trip_and_feed_the_mix(tmp_path):
    """Notebooks 01–05 write parts, 06 mixes them: an edit made in a part reaches the mix."""
    from qeu_utils.builders.common import read_part, write_part
    from qeu_utils.builders.mix import build_init

    groups = build_food(seed=0)
    path = write_part(groups, tmp_path, "food")
    assert path == tmp_path / "init_parts" / "food.jsonl"
    again = read_part(path)
    assert [(g.key, g.weight, g.records) for g in again] == [
        (g.key, g.weight, g.records) for g in groups]
    assert build_init(seed=0, groups={"food": again}) == build_init(seed=0)

    edited = [g for g in again if g.key != "pizza"]
    train, held_out = build_init(size=None, seed=0, categories=["food"],
                                 groups={"food": edited})
    assert not [r for r in train + held_out if r["output"] == "pizza"]

    path.write_text('{"key": "x", "weight": 1.0, "records": [{"id": "1"}]}\n', "utf-8")
    with pytest.raises(ValueError, match=r"food.jsonl:1"):
        read_part(path)


def test_a_share_of_zero_leaves_a_category_out_and_a_missing_share_is_an_error():
    from qeu_utils.builders.mix import build_init

    shares = {"kanji": 0.5, "country": 0.5, "food": 0.0}
    train, held_out = build_init(size=60, seed=0, categories=["kanji", "country", "food"],
                                 proportions=shares)
    assert {r["category"] for r in train} == {r["category"] for r in held_out} == {
        "kanji", "country"}
    assert len(train) + len(held_out) == 60
    with pytest.raises(ValueError, match=r"no share for \['food'\]: give every category one"):
        build_init(size=60, categories=["kanji", "food"], proportions={"kanji": 1.0})
    with pytest.raises(ValueError, match=r"unknown categories \['poems'\]"):
        build_init(size=60, proportions={**shares, "poems": 0.1})
    with pytest.raises(ValueError, match="every category's share is 0"):
        build_init(size=60, categories=["food"], proportions={"food": 0})
    # Without categories, the mix is what the proportions name (notebook 06's exercise 1).
    train, held_out = build_init(size=300, seed=0, proportions={"style": 0.6, "kanji": 0.4})
    assert Counter(r["category"] for r in train) == {"style": 162, "kanji": 108}
    assert {r["category"] for r in held_out} == {"style", "kanji"}
