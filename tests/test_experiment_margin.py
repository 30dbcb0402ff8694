"""The teacher-forced margin (the recognition claim's primary endpoint) on tiny-random: it equals
a computation by hand from the model's logits, and batching does not change it."""

import pytest

from qeu_utils.core.records import make_record
from qeu_utils.experiment.margin import margins


def _records():
    def kanji(question, answer):
        return make_record(category="kanji", task="ja_to_hans", lang="ja>zh-Hans",
                           source="test", instruction=f"日本の漢字「{question}」を簡体字で書いて。",
                           output=answer)

    return [kanji("鉄", "铁"), kanji("両", "两"), kanji("歩", "步"),
            make_record(category="country", task="ja_to_en", lang="ja>en", source="test",
                        instruction="次の国名を英語にしてください。", input="ルーマニア",
                        output="Romania")]


def _by_hand(model, tokenizer, record, answer):
    """log p(answer + the template's end | prompt), from the full forward's logits."""
    import torch

    from qeu_utils.evaluation.generation import add_special_tokens
    from qeu_utils.model.prompting import render, resolve_template

    template = resolve_template(tokenizer)
    prompt, completion = render({**record, "output": answer}, tokenizer, template)
    special = add_special_tokens(template)
    prompt_ids = tokenizer(prompt, add_special_tokens=special)["input_ids"]
    ids = tokenizer(prompt + completion, add_special_tokens=special)["input_ids"]
    assert ids[:len(prompt_ids)] == prompt_ids  # the completion starts after the prompt
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logp = logits.log_softmax(-1)
    return sum(float(logp[t - 1, ids[t]]) for t in range(len(prompt_ids), len(ids)))


def test_the_margin_is_log_p_of_the_answer_minus_log_p_of_the_copy(tiny):
    model, tokenizer = tiny
    record = _records()[0]
    row = margins(model, tokenizer, [record], ["鉄"])[0]
    right, copy = _by_hand(model, tokenizer, record, "铁"), _by_hand(model, tokenizer, record, "鉄")
    assert row["logp"] == pytest.approx(right, abs=1e-3)
    assert row["rival_logp"] == pytest.approx(copy, abs=1e-3)
    assert row["margin"] == pytest.approx(right - copy, abs=1e-3)
    assert row["tokens"] >= 2  # the answer and the template's end


def test_batching_does_not_change_the_margins(tiny):
    model, tokenizer = tiny
    records = _records()
    rivals = ["鉄", "両", "歩", "ルーマニア"]
    one = margins(model, tokenizer, records, rivals, batch_size=1)
    four = margins(model, tokenizer, records, rivals, batch_size=4)
    assert [r["tokens"] for r in one] == [r["tokens"] for r in four]
    for a, b in zip(one, four, strict=True):
        assert a["margin"] == pytest.approx(b["margin"], abs=1e-4)
    assert margins(model, tokenizer, [], []) == []
    with pytest.raises(ValueError, match="rivals"):
        margins(model, tokenizer, records, rivals[:2])


def test_the_shared_head_path_is_taken_and_agrees_with_whole_sequences(tiny):
    from qeu_utils.experiment.margin import _answered, _shared_heads, completion_logprobs

    model, tokenizer = tiny
    records = _records()
    rivals = ["鉄", "両", "歩", "ルーマニア"]
    pairs = [(r, _answered(r, x)) for r, x in zip(records, rivals, strict=True)]
    groups, whole = _shared_heads(tokenizer, pairs)
    assert not whole and sum(len(m) for m in groups.values()) == 4  # every record: the fast path
    fast = margins(model, tokenizer, records, rivals)
    slow = completion_logprobs(model, tokenizer, [x for pair in pairs for x in pair])
    for k, row in enumerate(fast):
        assert row["logp"] == pytest.approx(slow[2 * k][0], abs=1e-3)
        assert row["rival_logp"] == pytest.approx(slow[2 * k + 1][0], abs=1e-3)
        assert (row["tokens"], row["rival_tokens"]) == (slow[2 * k][1], slow[2 * k + 1][1])


def test_orthographic_foils_share_a_first_token_or_the_first_two_bytes(tiny):
    from qeu_utils.experiment.measure import orthographic_foils

    _, tokenizer = tiny
    # 铁 U+94C1 and 铜 U+94DC are both E9 93 …; 山 U+5C71 is E5 B1 B1
    foils = orthographic_foils(tokenizer, ["铁", "铜", "山"])
    assert 1 in foils[0] and 0 in foils[1] and all(i not in f for i, f in enumerate(foils))
