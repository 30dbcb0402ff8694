"""Throughput of qeu_utils.text.style_detect.detect_style against raw fugashi tokenization.

Builds a deterministic corpus of 10,000 real Japanese sentences (plain sentences, their
polite forms, with leading clauses and quotes, and pairs of main clauses joined by が/けど),
then times, in the same process, (a) tokenizing every sentence with the same fugashi Tagger
and (b) detecting its style. Prints throughput_ratio = tokenize_time / detect_time
(1.0: detection costs no more than tokenizing; the goal is >= 0.5), and the same ratio on
two-sentence texts, where sentence splitting adds its share.

Run: python bench/style_bench.py
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

try:
    from qeu_utils.text import sentences, style_convert, style_detect
    from qeu_utils.text import tagger as unidic
except ImportError:  # run from a checkout where the package is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from qeu_utils.text import sentences, style_convert, style_detect
    from qeu_utils.text import tagger as unidic

PLAIN = [
    "毎朝コーヒーを飲む。",
    "手紙を書く。",
    "プールで泳ぐ。",
    "友達と話す。",
    "駅で電車を待つ。",
    "公園で遊ぶ。",
    "家に帰る。",
    "明日は学校に行く。",
    "昨日は雨が降った。",
    "彼は手紙を書いた。",
    "子供たちは川で泳いだ。",
    "先週、京都に行った。",
    "朝ご飯を食べる。",
    "テレビを見た。",
    "毎日日本語を勉強する。",
    "先生が教室に来た。",
    "私は肉を食べない。",
    "昨日は何もしなかった。",
    "一緒に映画を見よう。",
    "彼は漢字が読める。",
    "この魚は生で食べられる。",
    "雨が降っている。",
    "宿題を忘れてしまった。",
    "この映画は面白い。",
    "旅行はとても楽しかった。",
    "今日はあまり寒くない。",
    "冷たい水が飲みたい。",
    "彼は学生だ。",
    "この部屋は静かだ。",
    "昨日は日曜日だった。",
    "これは私の本ではない。",
    "明日はたぶん雨だろう。",
    "今から出かけるんだ。",
    "明日までにレポートを出さなければならない。",
    "あなたも行くか。",
    "このケーキはおいしいね。",
    "雨が降っているので、試合は中止になった。",
    "彼は「今日は休みます」と言った。",
    "『雪国』を読んだことがある。",
    "疲れたけど、まだ頑張る！",
]

# Leading material that does not change the main clause: adverbs, subordinate clauses,
# quotes. Each corpus sentence is one prefix + one base sentence.
PREFIXES = [
    "",
    "今日は",
    "たぶん、",
    "それでも、",
    "時間がないので、",
    "駅に着いたら、",
    "先生に言われたとおり、",
    "「大丈夫です」と言われたが、",
    "雨が降っても、",
    "彼女が帰ってきたあとで、",
    "本当のことを言うと、",
    "夏休みになったら、",
    "『坊っちゃん』を読み終えてから、",
]


def build_corpus(min_size: int = 10_000) -> list[str]:
    """Deterministic corpus of ``min_size`` single sentences.

    Every base sentence in both styles, with every leading phrase; then two main clauses
    joined by が、/けど、 (plain or polite, as they come), until the corpus is full.
    """
    bases = PLAIN + [style_convert.to_polite(s) for s in PLAIN]
    corpus = [p + b for p in PREFIXES for b in bases]
    # Statements (no questions, no volitional 〜う) can take が/けど: drop their final 。.
    clauses = [b[:-1] for b in bases if b.endswith("。") and b[-2] not in "かねよう"]
    for (a, b), conj in itertools.product(itertools.product(clauses, bases), ("が、", "けど、")):
        if len(corpus) >= min_size:
            break
        corpus.append(a + conj + b)
    return corpus


def two_sentence_texts(corpus: list[str], size: int = 2_000) -> list[str]:
    """Texts of two corpus sentences each: the cost of splitting shows up here."""
    return [corpus[i] + corpus[(i * 7 + 3) % len(corpus)] for i in range(size)]


def _run(fn, chunk: list[str]) -> float:
    t0 = time.perf_counter()
    for text in chunk:
        fn(text)
    return time.perf_counter() - t0


def time_both(tokenize, detect, corpus: list[str], repeats: int, chunk: int = 250):
    """Total (tokenize, detect) seconds over ``corpus``.

    The corpus is timed in chunks; each chunk is run ``repeats`` times by both functions,
    back to back, and its fastest run counts. On a shared, noisy machine this keeps a burst
    of load from landing on one side of the ratio only.
    """
    tok_total = det_total = 0.0
    for start in range(0, len(corpus), chunk):
        part = corpus[start : start + chunk]
        tok_best = det_best = float("inf")
        for _ in range(repeats):
            tok_best = min(tok_best, _run(tokenize, part))
            det_best = min(det_best, _run(detect, part))
        tok_total += tok_best
        det_total += det_best
    return tok_total, det_total


def main(repeats: int = 7) -> float:
    corpus = build_corpus()
    tagger = unidic.tagger()  # the same Tagger detect_style uses
    styles = [style_detect.detect_style(t) for t in corpus]  # warm up, and a sanity summary
    assert all(len(sentences.split_sentences(t)) == 1 for t in corpus), "corpus must be sentences"
    tokenize_time, detect_time = time_both(tagger, style_detect.detect_style, corpus, repeats)
    ratio = tokenize_time / detect_time
    n = len(corpus)
    counts = {s.value: styles.count(s) for s in style_detect.Style}
    print(f"corpus: {n} sentences, {sum(len(t) for t in corpus)} characters; styles {counts}")
    print(f"tokenize: {tokenize_time:.3f} s ({n / tokenize_time:,.0f} sentences/s)")
    print(f"detect_style: {detect_time:.3f} s ({n / detect_time:,.0f} sentences/s)")
    texts = two_sentence_texts(corpus)
    tok2, det2 = time_both(tagger, style_detect.detect_style, texts, repeats)
    print(f"two-sentence texts ({len(texts)}): throughput_ratio = {tok2 / det2:.2f}")
    print(f"throughput_ratio = tokenize_time / detect_time = {ratio:.2f} (goal >= 0.5)")
    return ratio


if __name__ == "__main__":
    main()
