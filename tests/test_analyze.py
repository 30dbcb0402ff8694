"""The analyze command end to end on tiny-random, seen and unseen kanji apart."""

import json

import pytest

from qeu_utils.analysis.analyze import analyze, headline, report


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    from qeu_utils.builders.mix import build_init, write_init
    from qeu_utils.training.config import resolve
    from qeu_utils.training.train import train

    root = tmp_path_factory.mktemp("analyze")
    train_records, held_out = build_init(size=40, seed=0, categories=["kanji", "style"])
    data = write_init(root / "init", train_records, held_out, seed=0, size=40)
    out = root / "stage1"
    train(resolve("stage1", model_name_or_path="tiny-random", dataset=str(data),
                  output_dir=str(out), max_steps=2, per_device_train_batch_size=4,
                  evaluate=False, learning_rate=1e-2))
    return data, out


def test_analyze_writes_metrics_report_and_pictures(stage1, tmp_path):
    _, out1 = stage1
    result = analyze("tiny-random", [str(out1)], tmp_path / "ana", labels=["base", "stage 1"],
                     n_kanji=12, n_sentences=10, n_lens=5)
    assert set(result["summary"]) == {"base", "stage 1"}
    saved = json.loads((tmp_path / "ana" / "metrics.json").read_text(encoding="utf-8"))
    layers = saved["per_layer"]["base"]["kanji_ja_hans"]
    assert len(layers) == 3  # embeddings + 2 layers
    for name in ["kanji_gap_by_layer.png", "kanji_top1_by_layer.png", "style_plain_zh_gap.png",
                 "style_polite_en_gap.png", "logit_lens_kanji.png", "kanji_projection_base.png",
                 "kanji_projection_stage_1.png", "kanji_similarity_stage_1.png"]:
        assert (tmp_path / "ana" / name).stat().st_size > 0, name
    text = (tmp_path / "ana" / "report.md").read_text(encoding="utf-8")
    assert "| metric | base | stage 1 |" in text
    assert "- stage 1: kanji alignment (Japanese ⇄ Simplified)" in text


def test_headline_picks_the_best_layer_and_the_middle_style_layer():
    rows = [{"layer": k, "gap": g, "gap_lo": g - 0.1, "gap_hi": g + 0.1, "top1": t}
            for k, (g, t) in enumerate([(0.1, 0.5), (0.3, 0.2), (0.2, 0.9)])]
    style = [{"layer": k, "plain_zh_gap": k / 10, "plain_zh_gap_lo": 0.0, "plain_zh_gap_hi": 1.0,
              "polite_en_gap": -k / 10, "polite_en_gap_lo": -1.0, "polite_en_gap_hi": 0.0}
             for k in range(3)]
    lens = {"layers": 3, "answer_prob": [0.0, 0.5, 0.1], "mass_en": [0, 0, 0.4],
            "mass_zh": [0, 0, 0.1], "mass_ja": [0, 0, 0.05]}
    metrics = {"kanji_ja_hans": rows, "kanji_ja_hant": rows, "country_ja_hans": rows,
               "country_ja_en": rows, "loanword_ja_en": rows, "style": style,
               "logit_lens_kanji": lens}
    h = headline(metrics)
    assert (h["kanji_layer"], h["kanji_gap"], h["kanji_top1"], h["kanji_best_top1"]) == (
        1, 0.3, 0.2, 0.9)
    assert h["style_layer"] == 1 and h["plain_zh_gap"] == 0.1
    assert h["lens_answer_peak_layer"] == 1 and h["lens_mass_en_last"] == 0.4
    text = report("m", {"base": h, "after": h | {"kanji_gap": 0.6, "kanji_gap_lo": 0.55}})
    assert ("kanji alignment (Japanese ⇄ Simplified) rose by 0.3000 "
            "(beyond the 95% intervals)") in text


def test_seen_kanji_come_from_the_stages_lineage_and_are_measured_apart(stage1):
    from qeu_utils.analysis.analyze import analyze_model, seen_forms
    from qeu_utils.analysis.items import kanji_forms_in, kanji_items
    from qeu_utils.core.records import read_jsonl
    from qeu_utils.model.models import load_model

    data, out1 = stage1
    taught = kanji_forms_in(read_jsonl(data / "train.jsonl"))
    assert taught and seen_forms([str(out1), "not-a-run"]) == taught
    kanji = kanji_items(8, 0)
    model, tokenizer = load_model("tiny-random", device="cpu")
    metrics, _ = analyze_model(model, tokenizer, n_kanji=8, n_sentences=4, n_lens=2,
                               n_words=6, seen={k[0] for k in kanji[:3]})
    assert metrics["items"]["kanji_seen"] == 3 and metrics["items"]["kanji_unseen"] == 5
    assert metrics["items"]["countries"] == 6 and metrics["items"]["loanwords"] == 6
    assert metrics["country_ja_hans"][0]["n"] == 6
    assert metrics["kanji_ja_hans_seen"][0]["n"] == 3
    assert metrics["kanji_ja_hans_unseen"][0]["n"] == 5
    h = headline(metrics)
    assert h["kanji_gap_seen"] is not None and h["kanji_gap_unseen"] is not None
