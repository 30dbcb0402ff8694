import json

import pytest

from qeu_utils.__main__ import main
from qeu_utils.core.records import make_record, write_jsonl
from qeu_utils.sharing import chat


def test_reply_is_the_greedy_answer_evaluation_gives(tiny):
    from qeu_utils.evaluation.generation import generate_answers

    model, tokenizer = tiny
    prompt = "日本の首都はどこですか？"
    record = make_record(category="custom", task="ask", instruction=prompt, output="東京",
                         lang="ja>ja", source="test")
    expected = generate_answers(model, tokenizer, [record], max_new_tokens=12)[0]
    assert chat.reply(model, tokenizer, prompt, max_new_tokens=12) == expected


def test_reply_streams_the_answer_as_it_is_generated(tiny, capsys):
    model, tokenizer = tiny
    answer = chat.reply(model, tokenizer, "What is the capital of Japan?", max_new_tokens=12,
                        stream=True)
    assert capsys.readouterr().out.strip() == answer
    # Streaming has its own generate call: it must give the answer the batched path gives.
    assert answer == chat.reply(model, tokenizer, "What is the capital of Japan?",
                                max_new_tokens=12)


@pytest.mark.parametrize("prompt, tokens, message", [
    ("  ", 8, "reply: the prompt is empty"),
    ("hi", 0, "max_new_tokens must be at least 1, got 0"),
])
def test_reply_refuses_bad_input(tiny, prompt, tokens, message):
    with pytest.raises(ValueError, match=message):
        chat.reply(*tiny, prompt, max_new_tokens=tokens)


def _record(category, task, instruction, output, input=""):
    return make_record(category=category, task=task, instruction=instruction, input=input,
                       output=output, lang="x>y", source="test")


def test_question_set_takes_held_out_items_from_the_run(tmp_path):
    write_jsonl([
        _record("kanji", "hant_to_ja", "繁体字の「鐵」は？", "鉄"),
        _record("kanji", "ja_to_hans", "「鉄」を簡体字で書いてください。", "铁"),
        _record("country", "ja_to_en", "次の国名を英語にしてください。", "France",
                input="フランス"),
        _record("country", "ja_to_en", "「ドイツ」を英語で言うと何ですか？", "Germany"),
        _record("katakana", "en_to_loanword", "英語の「coffee」は？", "コーヒー"),
    ], tmp_path / "init" / "eval.jsonl")
    questions = chat.question_set(tmp_path)
    assert questions[:4] == chat.QUESTIONS
    assert questions[4:] == [
        {"label": "held-out kanji", "prompt": "「鉄」を簡体字で書いてください。", "expected": "铁"},
        {"label": "held-out country", "prompt": "「ドイツ」を英語で言うと何ですか？",
         "expected": "Germany"},
        {"label": "held-out loanword", "prompt": "英語の「coffee」は？", "expected": "コーヒー"},
    ]
    assert chat.question_set(tmp_path) == questions


def test_question_set_names_a_missing_category(tmp_path):
    write_jsonl([_record("kanji", "ja_to_hans", "「鉄」は？", "铁")],
                tmp_path / "init" / "eval.jsonl")
    with pytest.raises(ValueError, match="the eval split has no 'country' records"):
        chat.question_set(tmp_path)


def test_question_set_without_a_run_uses_the_default_build():
    questions = chat.question_set()
    assert [q["label"] for q in questions] == [
        "capital (ja)", "capital (en)", "plain request → zh", "polite request → en",
        "held-out kanji", "held-out country", "held-out loanword"]
    # Taken from the default build's eval split (its exact items follow the packaged data).
    from qeu_utils.builders.mix import build_init
    from qeu_utils.core.records import prompt_text

    _, held_out = build_init()
    for q, category in zip(questions[4:], ["kanji", "country", "katakana"], strict=True):
        assert any((prompt_text(r), r["output"]) == (q["prompt"], q["expected"])
                   for r in held_out if r["category"] == category)
    assert chat.question_set() == questions


def test_compare_answers_is_a_markdown_table(monkeypatch):
    monkeypatch.setattr(chat, "reply", lambda model, tok, prompt, **kw: f"{model}:{prompt}"[:9])
    questions = [{"label": "a", "prompt": "日本の首都は|どこ", "expected": "東京"},
                 {"label": "b", "prompt": "two\nlines", "expected": ""}]
    table = chat.compare_answers({"base": ("m0", None), "stage1": ("m1", None)}, questions)
    assert table == (
        "| question | expected | base | stage1 |\n"
        "|---|---|---|---|\n"
        "| 日本の首都は\\|どこ | 東京 | m0:日本の首都は | m1:日本の首都は |\n"
        "| two<br>lines | ∅ | m0:two<br>li | m1:two<br>li |\n"
    )


def test_load_stage_names_the_stages_that_exist(tmp_path):
    (tmp_path / "stage1").mkdir()
    (tmp_path / "stage1" / "lineage.json").write_text(json.dumps({"base_model": "tiny-random"}))
    with pytest.raises(FileNotFoundError, match=r"stage2 is not a trained stage .*: stage1$"):
        chat.load_stage(tmp_path, 2)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        chat.load_stage(tmp_path / "nope", 1)
    with pytest.raises(FileNotFoundError, match="base model is unknown"):
        chat.load_stage(tmp_path / "stage1", None)


def test_load_stage_zero_is_the_base_of_the_run(tmp_path, tmp_cache):
    (tmp_path / "run.json").write_text(json.dumps({"model": "tiny-random", "seed": 0}))
    model, tokenizer, label = chat.load_stage(tmp_path, 0, device="cpu")
    assert label == "base"
    assert model.config.num_hidden_layers == 2


def test_repl_answers_until_an_empty_line(monkeypatch, capsys):
    asked = []
    monkeypatch.setattr(chat, "reply", lambda m, t, prompt, **kw: asked.append(prompt))
    lines = iter(["こんにちは", "元気？", ""])
    assert chat.repl(None, None, read=lambda _: next(lines)) == 2
    assert asked == ["こんにちは", "元気？"]

    def eof(_):
        raise EOFError

    assert chat.repl(None, None, read=eof) == 0


def test_cli_chat_answers_one_prompt(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(chat, "load_stage", lambda run, stage: ("m", "t", f"stage{stage}"))
    monkeypatch.setattr(chat, "reply", lambda m, t, p, max_new_tokens: f"{p}→{max_new_tokens}")
    assert main(["chat", "--run", str(tmp_path), "--stage", "1", "--prompt", "やあ",
                 "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out == "やあ→5\n"


def test_cli_error_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("QEU_DEBUG", raising=False)
    assert main(["chat", "--run", str(tmp_path), "--stage", "3", "--prompt", "x"]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: {tmp_path}/stage3 is not a trained stage (no lineage.json); stages "
                   f"in {tmp_path}: none (run with --debug for the traceback)\n")
    for argv, env in ((["--debug"], None), ([], "1")):
        if env:
            monkeypatch.setenv("QEU_DEBUG", env)
        assert main(argv + ["chat", "--run", str(tmp_path), "--stage", "3", "--prompt", "x"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last):")
        assert 'in load_stage\n' in err
        assert err.endswith(f"error: {tmp_path}/stage3 is not a trained stage (no lineage.json); "
                            f"stages in {tmp_path}: none\n")


@pytest.mark.parametrize("answer, template, expected", [
    ("東京\n\n### 応答:\n東京", "alpaca", "東京\n"),
    ("铁\n### 指示:\n", "alpaca", "铁"),
    ("# 見出し\n本文", "alpaca", "# 見出し\n本文"),  # a heading inside an answer is kept
    ("東京\n\n### 応答:", "chat", "東京\n\n### 応答:"),  # chat templates end on their end token
])
def test_an_alpaca_answer_ends_where_the_model_starts_the_next_section(answer, template,
                                                                        expected):
    from qeu_utils.model.prompting import cut_at_stop, stop_strings

    assert cut_at_stop(answer, template) == expected
    assert stop_strings(template) == (["\n###"] if template == "alpaca" else [])
