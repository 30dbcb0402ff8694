"""Embedding analysis: metrics against answers worked out by hand, pooling and the logit lens
against manual forward passes on the tiny random model, and every plot written to a PNG."""

import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from qeu_utils.analysis.hidden_states import (  # noqa: E402
    _sink_id,
    pooled_states,
    sentence_states,
)
from qeu_utils.analysis.items import (  # noqa: E402
    country_items,
    kanji_forms_in,
    kanji_items,
    loanword_items,
    sentence_items,
    split_seen,
)
from qeu_utils.analysis.logit_lens import (  # noqa: E402
    _final_norm,
    answer_probabilities,
    chat_prompt,
    logit_lens,
    next_token_distributions,
    token_languages,
)
from qeu_utils.analysis.metrics import (  # noqa: E402
    alignment,
    alignment_items,
    style_linkage,
    style_linkage_items,
)
from qeu_utils.analysis.plots import (  # noqa: E402
    plot_layer_curves,
    plot_logit_lens,
    plot_projection,
    plot_similarity_heatmap,
)


def _manual_mean(model, tokenizer, text, span):
    """Every layer's mean over the tokens overlapping ``span``, from a plain unbatched pass
    over BOS + text (BOS takes the first position's attention sink and is never pooled)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    keep = [k + 1 for k, (s, e) in enumerate(enc["offset_mapping"]) if s < span[1] and e > span[0]]
    ids = torch.tensor([[tokenizer.bos_token_id, *enc["input_ids"]]])
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states
    return torch.stack([h[0, keep].mean(dim=0) for h in hidden]), len(enc["input_ids"]), keep


# --- alignment ---------------------------------------------------------------------------


def test_identical_inputs_match_perfectly():
    a = torch.randn(3, 12, 16, generator=torch.Generator().manual_seed(0))
    for row in alignment(a, a.clone(), n_boot=200):
        assert row["matched"] == pytest.approx(1.0, abs=1e-6)
        assert row["top1"] == row["top10"] == row["mrr"] == 1.0
        assert row["gap"] == pytest.approx(1.0 - row["random"])
    assert [r["layer"] for r in alignment(a, a, n_boot=10)] == [0, 1, 2]


def test_a_derangement_of_orthogonal_vectors_is_never_retrieved():
    a = torch.eye(4).unsqueeze(0)
    b = a[:, [1, 2, 3, 0]]  # b[i] is a[i+1]: no item keeps its own vector
    (row,) = alignment(a, b, n_boot=100)
    assert row["top1"] == 0.0
    assert row["matched"] == pytest.approx(0.0)
    assert row["random"] == pytest.approx(1 / 3)  # one 1 among each row's three others
    assert row["mrr"] == pytest.approx(0.5)
    assert row["gap"] < 0


def test_random_pair_mean_and_retrieval_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    (row,) = alignment(a, b, n_boot=100)  # a 2-D input is one layer
    r = 1 / math.sqrt(2)
    # cos(a_i, b_j): [[1, r, 0], [0, r, 1], [r, 1, r]]
    assert row["matched"] == pytest.approx((1 + r + r) / 3)
    assert row["random"] == pytest.approx((r + 0 + 0 + 1 + r + 1) / 6)
    assert row["top1"] == pytest.approx(1 / 3)  # a_1 and a_2 each find a closer b first
    assert row["top10"] == 1.0
    assert row["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)


def test_bootstrap_ci_contains_the_estimate_and_is_seeded():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(4, 40, 8, generator=gen)
    b = a + 0.8 * torch.randn(4, 40, 8, generator=gen)
    rows = alignment(a, b, n_boot=500, seed=3)
    for row in rows:
        assert row["gap_lo"] <= row["gap"] <= row["gap_hi"]
        assert row["gap_lo"] < row["gap_hi"]
    assert alignment(a, b, n_boot=500, seed=3) == rows
    assert alignment(a, b, n_boot=500, seed=4) != rows


def test_centering_removes_a_shared_offset():
    gen = torch.Generator().manual_seed(2)
    a, b = torch.randn(2, 10, 6, generator=gen), torch.randn(2, 10, 6, generator=gen)
    offset = 50 * torch.randn(6, generator=gen)
    raw = alignment(a + offset, b + offset, n_boot=50)
    assert all(r["matched"] > 0.9 and r["random"] > 0.9 for r in raw)  # all crowded near 1
    centered = alignment(a + offset, b + offset, n_boot=50, center=True)
    expected = alignment(a, b, n_boot=50, center=True)
    for got, want in zip(centered, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-4)
    assert alignment(a, a, n_boot=50, center=True)[0]["top1"] == 1.0


def test_alignment_rejects_mismatched_or_single_items():
    with pytest.raises(ValueError, match="same shape"):
        alignment(torch.zeros(1, 3, 4), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="at least 2"):
        alignment(torch.ones(1, 1, 4), torch.ones(1, 1, 4))


def test_style_linkage_signs_on_constructed_vectors():
    gen = torch.Generator().manual_seed(0)
    n, dim = 30, 8
    e_zh, e_en = torch.zeros(dim), torch.zeros(dim)
    e_zh[0], e_en[1] = 1.0, 1.0

    def near(direction):
        return direction + 0.1 * torch.randn(2, n, dim, generator=gen)

    zh, en = near(e_zh), near(e_en)
    linked = style_linkage(near(e_zh), near(e_en), zh, en, n_boot=300)
    assert len(linked) == 2
    for row in linked:
        assert row["plain_zh_gap"] > 0.5 and row["polite_en_gap"] > 0.5
        for key in ("plain_zh_gap", "polite_en_gap"):
            assert row[f"{key}_lo"] <= row[key] <= row[f"{key}_hi"]
        assert row["plain_zh_gap"] == pytest.approx(row["cos_plain_zh"] - row["cos_polite_zh"])
    # Swap the styles: the link is reversed, both gaps negative.
    reversed_ = style_linkage(near(e_en), near(e_zh), zh, en, n_boot=300)
    assert all(r["plain_zh_gap"] < 0 and r["polite_en_gap"] < 0 for r in reversed_)


# --- representations ---------------------------------------------------------------------


def test_pooled_states_cover_exactly_the_items_tokens(tiny):
    model, tokenizer = tiny
    items = ["鉄", "鐵", "铁", "日本語", "a"]
    states = pooled_states(model, tokenizer, items, batch_size=2)
    layers, hidden = model.config.num_hidden_layers + 1, model.config.hidden_size
    assert states.shape == (layers, len(items), hidden)
    assert states.dtype == torch.float32
    for i, item in enumerate(items):
        expected, n_tokens, keep = _manual_mean(model, tokenizer, f"「{item}」", (1, 1 + len(item)))
        assert 0 < len(keep) < n_tokens  # the brackets' own tokens are left out
        torch.testing.assert_close(states[:, i], expected, atol=1e-5, rtol=1e-5)


def test_the_first_position_goes_to_bos_or_else_eos():
    from types import SimpleNamespace

    assert _sink_id(SimpleNamespace(bos_token_id=3, eos_token_id=7)) == 3
    assert _sink_id(SimpleNamespace(bos_token_id=None, eos_token_id=7)) == 7


def test_pooled_states_custom_context_and_errors(tiny):
    model, tokenizer = tiny
    states = pooled_states(model, tokenizer, ["東京"], context="首都は{x}です。")
    expected, _, _ = _manual_mean(model, tokenizer, "首都は東京です。", (3, 5))
    torch.testing.assert_close(states[:, 0], expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="placeholder"):
        pooled_states(model, tokenizer, ["x"], context="no slot")
    with pytest.raises(ValueError, match="covers no token"):
        pooled_states(model, tokenizer, [""])


def test_sentence_states_average_every_token(tiny):
    model, tokenizer = tiny
    sentences = ["今日は雨が降っています。", "It is raining.", "我每天早上喝咖啡。"]
    states = sentence_states(model, tokenizer, sentences, batch_size=3)
    assert states.shape == (model.config.num_hidden_layers + 1, 3, model.config.hidden_size)
    for i, text in enumerate(sentences):
        expected, _, _ = _manual_mean(model, tokenizer, text, (0, len(text)))
        torch.testing.assert_close(states[:, i], expected, atol=1e-5, rtol=1e-5)


def test_pooled_states_run_the_lora_adapter(tiny):
    from peft import LoraConfig, get_peft_model

    from qeu_utils.model.models import load_model

    _, tokenizer = tiny
    base, _ = load_model("tiny-random", device="cpu")  # its own copy: PEFT wraps in place
    before = pooled_states(base, tokenizer, ["鉄"])
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    after = pooled_states(peft_model, tokenizer, ["鉄"])
    expected, _, _ = _manual_mean(peft_model, tokenizer, "「鉄」", (1, 2))
    torch.testing.assert_close(after[:, 0], expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(before[-1], after[-1])
    lens = logit_lens(peft_model, tokenizer, ["「鉄」"], ["铁"])
    assert lens["layers"] == base.config.num_hidden_layers + 1


# --- logit lens --------------------------------------------------------------------------


def test_token_languages_on_known_tokens():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"hello": 0, "です": 1, "中国": 2, "日本です": 3, "123": 4, "<unk>": 5, "é": 6}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")
    masks = token_languages(tokenizer)
    assert masks["en"].tolist() == [True, False, False, False, False, False, False]
    assert masks["ja"].nonzero().flatten().tolist() == [1, 3]  # kana wins over Han
    assert masks["zh"].nonzero().flatten().tolist() == [2]
    assert masks["other"].nonzero().flatten().tolist() == [4, 5, 6]  # digits, special, é
    assert token_languages(tokenizer) is masks  # cached


def test_token_languages_partition_a_byte_level_vocabulary(tiny):
    _, tokenizer = tiny
    masks = token_languages(tokenizer)
    total = sum(m.long() for m in masks.values())
    assert total.tolist() == [1] * len(tokenizer)
    byte_piece = tokenizer.convert_tokens_to_ids("é")  # byte 0xE9: the start of 鉄, alone
    assert tokenizer.decode([byte_piece]) == "\ufffd" and masks["other"][byte_piece]
    assert masks["en"][tokenizer.convert_tokens_to_ids("a")]
    for special in tokenizer.all_special_ids:
        assert masks["other"][special]


def test_logit_lens_last_layer_is_the_models_distribution(tiny):
    model, tokenizer = tiny
    prompts = [chat_prompt(tokenizer, f"「{c}」を簡体字で書くと？") for c in ("鉄", "図書館")]
    prompts.append("short")  # different lengths: right padding must not change anything
    probs = next_token_distributions(model, tokenizer, prompts)
    layers = model.config.num_hidden_layers + 1
    assert probs.shape == (layers, 3, model.config.vocab_size)
    torch.testing.assert_close(probs.sum(-1), torch.ones(layers, 3))
    norm = _final_norm(model)
    for i, prompt in enumerate(prompts):
        ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            out = model(ids, output_hidden_states=True)
            real = out.logits[:, -1].softmax(-1)[0]
            first = model.lm_head(norm(out.hidden_states[1][0, -1])).softmax(-1)
        torch.testing.assert_close(probs[-1, i], real, atol=1e-4, rtol=0)
        torch.testing.assert_close(probs[1, i], first, atol=1e-4, rtol=0)

    answers = ["铁", "图书馆", "x"]
    result = logit_lens(model, tokenizer, prompts, answers, batch_size=2)
    assert result["layers"] == layers
    for key in ("answer_prob", "mass_en", "mass_zh", "mass_ja"):
        assert len(result[key]) == layers
        assert all(0.0 <= v <= 1.0 for v in result[key])
    assert len(result["top_tokens"]) == layers
    answer_ids = [tokenizer(a, add_special_tokens=False)["input_ids"][0] for a in answers]
    expected = probs[-1, torch.arange(3), torch.tensor(answer_ids)].mean()
    assert result["answer_prob"][-1] == pytest.approx(float(expected), abs=1e-5)
    en_mass = (probs[-1] @ token_languages(tokenizer)["en"].float()).mean()
    assert result["mass_en"][-1] == pytest.approx(float(en_mass), abs=1e-5)
    with pytest.raises(ValueError, match="as many answers"):
        logit_lens(model, tokenizer, prompts, answers[:1])


# --- items -------------------------------------------------------------------------------


def test_kanji_items_differ_in_all_three_forms_and_sample_stably():
    everything = kanji_items()
    assert ("鉄", "铁", "鐵") in everything
    assert all(len(set(t)) == 3 for t in everything)
    sample = kanji_items(10, seed=0)
    assert len(sample) == 10 and sample == kanji_items(10, seed=0)
    assert sample == sorted(sample, key=everything.index)
    assert sample != kanji_items(10, seed=1)


def test_country_loanword_and_sentence_items():
    countries = country_items()
    assert len(countries) == 195
    assert ("日本", "日本", "日本", "Japan") in countries
    loanwords = loanword_items()
    assert ("コーヒー", "coffee") in loanwords
    assert len(loanword_items(5)) == 5
    sentences = sentence_items(3)
    assert len(sentences) == 3 and all(len(row) == 4 for row in sentences)


# --- plots -------------------------------------------------------------------------------


def _png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path.stat().st_size


def test_every_plot_writes_a_png(tmp_path):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 6, 8, generator=gen)
    b = a + 0.5 * torch.randn(3, 6, 8, generator=gen)
    series = {"base": alignment(a, b, n_boot=50), "stage 1": alignment(a, a, n_boot=50)}
    plot_layer_curves(series, "gap", tmp_path / "gap.png", "漢字 gap", "gap")
    plot_layer_curves(series, "top1", tmp_path / "top1.png", "top-1", "top-1")
    forms = {"日本": a[-1], "繁体": b[-1], "簡体": a[-1] * 0.5}
    labels = {"日本": list("鉄図沢売広円"), "繁体": list("鐵圖澤賣廣圓"),
              "簡体": list("铁图泽卖广圆")}
    plot_projection(forms, labels, tmp_path / "pca.png", "PCA")
    plot_projection(forms, list("鉄図沢売広円"), tmp_path / "pca2.png", "PCA")
    plot_similarity_heatmap(a[-1], b[-1], list("鉄図沢売広円"), tmp_path / "heat.png", "cos",
                            col_labels=list("铁图泽卖广圆"))
    lens = {"layers": 3, "answer_prob": [0.1, 0.2, 0.3], "mass_en": [0.5, 0.4, 0.3],
            "mass_zh": [0.1, 0.2, 0.3], "mass_ja": [0.0, 0.1, 0.2], "top_tokens": ["a", "b", "c"]}
    plot_logit_lens({"base": lens, "stage 1": lens}, tmp_path / "lens.png", "lens")
    for name in ("gap", "top1", "pca", "pca2", "heat", "lens"):
        assert _png(tmp_path / f"{name}.png") > 1000
    with pytest.raises(ValueError, match="at most 20"):
        plot_similarity_heatmap(torch.randn(21, 4), torch.randn(21, 4), ["x"] * 21,
                                tmp_path / "big.png", "too big")


# --- per item, seen / unseen -------------------------------------------------------------


def test_alignment_items_average_to_alignment():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 7, 5, generator=gen), torch.randn(3, 7, 5, generator=gen)
    items = alignment_items(a, b, center=True)
    rows = alignment(a, b, center=True, n_boot=50)
    assert items["gap"].shape == items["rank"].shape == (3, 7)
    for layer, row in enumerate(rows):
        assert items["gap"][layer].mean() == pytest.approx(row["gap"])
        assert (items["rank"][layer] == 1).mean() == pytest.approx(row["top1"])
        assert (1 / items["rank"][layer]).mean() == pytest.approx(row["mrr"])


def test_foil_retrieval_counts_only_the_foils():
    from qeu_utils.analysis.metrics import foil_retrieval

    a = torch.eye(4).unsqueeze(0)  # item i points along axis i
    b = torch.eye(4).unsqueeze(0).clone()
    b[0, 0] = torch.tensor([1.0, 0.0, 1.0, 0.0])  # item 0's match, 45° off
    b[0, 1] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # on a[0]'s axis: a foil that beats it
    out = foil_retrieval(a, b, [[1], [2], [], [0, 1, 2]])
    assert out.shape == (1, 4)
    assert out[0, 0] == 0.0 and out[0, 1] == 1.0 and out[0, 3] == 1.0
    assert math.isnan(out[0, 2])  # no foil: not scored
    assert foil_retrieval(a, b, [[2], [2], [0], [0]])[0, 0] == 1.0  # b[1] is not its foil


def test_style_linkage_items_average_to_style_linkage():
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(2, 6, 4, generator=gen) for _ in range(4)]
    items = style_linkage_items(*xs)
    rows = style_linkage(*xs, n_boot=50)
    for layer, row in enumerate(rows):
        for key in ("plain_zh_gap", "polite_en_gap"):
            assert items[key][layer].mean() == pytest.approx(row[key])


def test_answer_probabilities_average_to_the_logit_lens(tiny):
    model, tokenizer = tiny
    prompts = [chat_prompt(tokenizer, f"「{c}」の簡体字は何ですか？") for c in "鉄説"]
    probs = answer_probabilities(model, tokenizer, prompts, ["铁", "说"], batch_size=1)
    lens = logit_lens(model, tokenizer, prompts, ["铁", "说"])
    assert probs.shape == (lens["layers"], 2)
    assert probs.mean(axis=1) == pytest.approx(lens["answer_prob"], abs=1e-6)


def test_kanji_forms_in_takes_items_not_instruction_words():
    from qeu_utils.core.records import make_record

    records = [
        make_record(category="kanji", task="ja_to_hans", instruction="「鉄」の簡体字は何ですか？",
                    output="铁", lang="ja>zh-Hans", source="t"),
        make_record(category="kanji", task="hans_to_ja", instruction="次の簡体字を日本の漢字に"
                    "直してください。", input="发", output="発・髪（意味によって字が異なります）",
                    lang="zh-Hans>ja", source="t"),
        make_record(category="style", task="plain_to_zh", instruction="次の文を中国語に訳して。",
                    input="駅へ行く。", output="去车站。", lang="ja>zh", style="plain",
                    source="t"),
    ]
    assert kanji_forms_in(records) == {"鉄", "铁", "发", "発", "髪"}


def test_split_seen_is_a_partition_in_order():
    items = [("鉄", "铁", "鐵"), ("説", "说", "說"), ("駅", "站", "驛")]
    seen, unseen = split_seen(items, {"说"})
    assert seen == [items[1]] and unseen == [items[0], items[2]]


def test_kanji_items_differ_in_hans_only_includes_more():
    every = kanji_items(differ="hans")
    three = kanji_items()
    assert set(three) < set(every)
    assert all(k[0] != k[1] for k in every)
    with pytest.raises(ValueError, match="differ"):
        kanji_items(differ="hant")
