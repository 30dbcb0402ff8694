"""The knowledge gate: cached scoring against a plain forward pass on tiny-random, margins and
strata on constructed cases, the items' rules on the real sources, and the CLI end to end."""

import json

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from qeu_utils.analysis.gate import (  # noqa: E402
    _prompt_entry,
    bootstrap_share,
    continuation_logprobs,
    encode_group,
    is_known,
    score_items,
    stratum,
    summarize,
)
from qeu_utils.analysis.gate_items import (  # noqa: E402
    N_DEMOS,
    _nearest_same_lead_byte,
    candidate_text,
    gate_items,
    prompt_parts,
)
from qeu_utils.cli.main import main  # noqa: E402

HEAD = "日本汉字"
TAILS = ["“鉄”对应的简体字是“", "“両”对应的简体字是“", "“アメリカ合衆国”的英文名是“"]
CANDS = [["铁”", "鉄”", "钱”"], ["两”", "両”", "严”"],
         ["United States”", "アメリカ合衆国”", "France”"]]


def _manual_logp(model, ids: list[int], n_prompt: int) -> float:
    """Summed log-probability of ``ids[n_prompt:]`` from one unbatched, uncached forward."""
    with torch.no_grad():
        lp = model(input_ids=torch.tensor([ids])).logits[0].double().log_softmax(-1)
    return sum(lp[n - 1, ids[n]].item() for n in range(n_prompt, len(ids)))


def test_logprob_equals_a_manual_forward_pass(tiny):
    model, tokenizer = tiny
    # batch_size 2 over 3 items: two batches, tails and candidates of different lengths.
    scores = continuation_logprobs(model, tokenizer, HEAD, TAILS, CANDS, batch_size=2)
    head_ids, tail_ids, cand_ids = encode_group(tokenizer, HEAD, TAILS, CANDS)
    for i, (tail, cands) in enumerate(zip(TAILS, CANDS, strict=True)):
        for j, cand in enumerate(cands):
            ids = head_ids + tail_ids[i] + cand_ids[i][j]
            # The pieces are the tokenization of the whole string, as the model reads it.
            assert ids == tokenizer(HEAD + tail + cand)["input_ids"]
            manual = _manual_logp(model, ids, len(head_ids) + len(tail_ids[i]))
            assert scores[i, j, 0] == pytest.approx(manual, abs=1e-4)
            assert scores[i, j, 1] == len(cand_ids[i][j])


def test_margins_signs_on_a_constructed_case(tiny):
    model, tokenizer = tiny
    # A strict extension of the answer's tokens has a lower summed log-probability (every
    # extra token adds a negative term); the same string scores exactly the same.
    answer, longer = "铁”", "铁”铁”铁”"
    _, _, (ids,) = encode_group(tokenizer, HEAD, [TAILS[0]], [[answer, longer, answer]])
    assert ids[1][:len(ids[0])] == ids[0] and len(ids[1]) > len(ids[0])
    score = continuation_logprobs(model, tokenizer, HEAD, [TAILS[0]],
                                  [[answer, longer, answer]])[0]
    entry = _prompt_entry(score)
    assert entry["margin_copy"] > 0
    assert entry["margin_distractor"] == 0
    assert entry["known"] is False  # a tie is not knowing


def test_prompt_entry_on_hand_made_numbers():
    entry = _prompt_entry(np.array([[-2.0, 2], [-6.0, 3], [-1.0, 1]]))
    assert entry["margin_copy"] == 4.0 and entry["margin_distractor"] == -1.0
    assert entry["mean_margin_copy"] == pytest.approx(-1.0 + 2.0)
    assert entry["mean_margin_distractor"] == pytest.approx(-1.0 + 1.0)
    assert entry["known"] is False
    assert _prompt_entry(np.array([[-1.0, 1], [-6.0, 3], [-2.0, 1]]))["known"] is True


def test_strata_on_hand_made_numbers():
    assert is_known(0.1, 0.1) and not is_known(0.0, 5.0) and not is_known(5.0, -0.1)
    assert [stratum(z, j) for z, j in [(True, False), (True, True), (False, True),
                                       (False, False)]] == ["K", "both", "J", "neither"]

    def row(kind, zh, ja):
        # Known items beat both rivals; unknown ones lose to the copy and beat the distractor.
        entry = {p: {"known": k, "margin_copy": 1.0 if k else -1.0, "margin_distractor": 1.0}
                 for p, k in (("zh", zh), ("ja", ja), ("fewshot", False))}
        return {"kind": kind, "task": "kanji_ja_hans" if kind == "kanji" else "country_ja_zh",
                **entry, "stratum": stratum(zh, ja)}

    rows = ([row("kanji", True, False)] * 3 + [row("kanji", True, True)] * 2
            + [row("country", False, True)] + [row("country", False, False)] * 4)
    summary = summarize(rows, n_boot=500)
    assert summary["primary"]["K_count"] == 3 and summary["primary"]["K_share"] == 0.3
    lo, hi = summary["primary"]["K_share_ci95"]
    assert 0 <= lo < 0.3 < hi <= 1
    assert summary["all"]["known"] == {"zh": 5, "ja": 3, "fewshot": 0}
    assert summary["all"]["beats_copy"] == {"zh": 5, "ja": 3, "fewshot": 0}
    assert summary["all"]["beats_distractor"] == {"zh": 10, "ja": 10, "fewshot": 10}
    assert summary["by_kind"]["kanji"]["K"] == 3 and summary["by_kind"]["country"]["J"] == 1
    assert summary["by_kind"]["country"]["neither"] == 4
    assert summary["secondary"]["K_minus_J_share"] == pytest.approx(0.2)
    assert summary["secondary"]["K_share_if_independent"] == pytest.approx(0.5 * 0.7)


def test_bootstrap_of_a_constant_and_of_nothing():
    assert bootstrap_share([1, 1, 1]) == (1.0, 1.0)
    with pytest.raises(ValueError, match="no values"):
        bootstrap_share([])


def test_items_follow_the_rules_and_keep_demonstrations_out():
    items, demos = gate_items(n_kanji=40, n_countries=12, n_loanwords=10, seed=3)
    assert {i.task for i in items} == set(demos)
    for item in items:
        assert item.answer != item.question
        assert item.distractor not in (item.answer, item.question)
    for task, pairs in demos.items():
        assert len(pairs) == N_DEMOS
        demo_questions = {q for q, _ in pairs}
        assert not demo_questions & {i.question for i in items if i.task == task}
    # A demonstration of one direction is not scored in another (鉄 → 铁 would teach 鉄 → 鐵).
    kanji_demos = {q for q, _ in demos["kanji_ja_hans"]}
    assert not kanji_demos & {i.question for i in items if i.kind == "kanji"}
    assert gate_items(n_kanji=40, n_countries=12, n_loanwords=10, seed=3) == (items, demos)
    assert sum(i.task == "country_ja_en" for i in items) == 12


def test_kanji_distractor_shares_the_lead_byte():
    assert _nearest_same_lead_byte("铁", "鉄", ["铁", "钱", "乐", "鉄"]) == "钱"
    # No form with the same lead byte: the nearest one anyway, never the answer or copy.
    assert _nearest_same_lead_byte("铁", "鉄", ["铁", "乐"]) == "乐"
    with pytest.raises(ValueError, match="no distractor"):
        _nearest_same_lead_byte("铁", "鉄", ["铁", "鉄"])


def test_prompts_end_where_the_answer_starts():
    head, tail = prompt_parts("kanji_ja_hans", "zh", "鉄", [])
    assert head + tail + candidate_text("zh", "铁") == "日本汉字“鉄”对应的简体字是“铁”"
    head, tail = prompt_parts("kanji_ja_hans", "ja", "鉄", [])
    assert head + tail + candidate_text("ja", "铁") == "日本の漢字「鉄」に対応する簡体字は「铁」"
    head, tail = prompt_parts("kanji_ja_hans", "fewshot", "鉄", [("沢", "泽")])
    assert head + tail + candidate_text("fewshot", "铁") == "沢 → 泽\n鉄 → 铁\n"
    with pytest.raises(ValueError, match="demonstrations"):
        prompt_parts("kanji_ja_hans", "fewshot", "鉄", [])


def test_score_items_assigns_a_stratum_to_every_item(tiny):
    model, tokenizer = tiny
    items, demos = gate_items(n_kanji=4, n_countries=0, n_loanwords=0)
    rows = score_items(model, tokenizer, items, demos, batch_size=3)
    assert len(rows) == len(items)
    for row in rows:
        assert row["stratum"] == stratum(row["zh"]["known"], row["ja"]["known"])
        for prompt in ("zh", "ja", "fewshot"):
            entry = row[prompt]
            assert entry["margin_copy"] == pytest.approx(
                entry["answer"]["logp"] - entry["copy"]["logp"])
    with pytest.raises(ValueError, match="no items"):
        score_items(model, tokenizer, [], demos)


def test_cli_writes_the_files_and_refuses_to_overwrite(tiny_cache, tmp_path, monkeypatch,
                                                       capsys):
    monkeypatch.setenv("QEU_CACHE", str(tiny_cache))
    out = tmp_path / "gate"
    args = ["gate", "--model", "tiny-random", "--out", str(out), "--n-kanji", "6",
            "--n-countries", "3", "--n-loanwords", "3"]
    assert main(args) == 0
    assert "K = " in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "items.jsonl").read_text("utf-8").splitlines()]
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert len(rows) == summary["n_items"] == sum(c["items"] for c in summary["by_task"].values())
    assert {r["stratum"] for r in rows} <= {"K", "both", "J", "neither"}
    assert summary["primary"]["K_count"] == sum(r["stratum"] == "K" for r in rows)
    assert summary["command"].startswith("python -m qeu_utils gate --model tiny-random")
    report = (out / "report.md").read_text("utf-8")
    assert "Definition of known" in report and "What it cannot say" in report
    assert (out / "gate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(args) == 1
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--model", "no-such-model"], "Unknown model alias"),
    (["--model", "tiny-random", "--n-kanji", "0", "--n-countries", "0", "--n-loanwords", "0"],
     "no items to score"),
    (["--model", "tiny-random", "--n-kanji", "-1"], "n_kanji must be 0 or more"),
])
def test_cli_bad_input_gets_a_clear_error(tiny_cache, tmp_path, monkeypatch, capsys, args,
                                          message):
    monkeypatch.setenv("QEU_CACHE", str(tiny_cache))
    assert main(["gate", "--out", str(tmp_path / "gate"), *args]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "gate").exists()
