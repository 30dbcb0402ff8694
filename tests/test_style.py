"""Tests for qeu_utils.text.sentences, style_detect and style_convert: splitting, detection and
plain ⇄ polite conversion."""

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeu_utils.text.sentences import sentence_spans, split_sentences
from qeu_utils.text.style_convert import to_plain, to_polite
from qeu_utils.text.style_detect import Style, detect_style, sentence_styles

# Plain sentence → hand-written polite form. Every row must survive the round trip.
ROUND_TRIP = [
    # godan verbs, every row
    ("毎朝コーヒーを飲む。", "毎朝コーヒーを飲みます。"),
    ("手紙を書く。", "手紙を書きます。"),
    ("プールで泳ぐ。", "プールで泳ぎます。"),
    ("友達と話す。", "友達と話します。"),
    ("駅で電車を待つ。", "駅で電車を待ちます。"),
    ("公園で遊ぶ。", "公園で遊びます。"),
    ("家に帰る。", "家に帰ります。"),
    ("駅で友達に会う。", "駅で友達に会います。"),
    ("明日は学校に行く。", "明日は学校に行きます。"),
    # past, including the euphonic forms
    ("昨日は雨が降った。", "昨日は雨が降りました。"),
    ("彼は手紙を書いた。", "彼は手紙を書きました。"),
    ("子供たちは川で泳いだ。", "子供たちは川で泳ぎました。"),
    ("昨日、本を読んだ。", "昨日、本を読みました。"),
    ("先週、京都に行った。", "先週、京都に行きました。"),
    ("金魚が死んだ。", "金魚が死にました。"),
    # ichidan, サ変, カ変
    ("朝ご飯を食べる。", "朝ご飯を食べます。"),
    ("テレビを見た。", "テレビを見ました。"),
    ("毎日日本語を勉強する。", "毎日日本語を勉強します。"),
    ("先生が教室に来た。", "先生が教室に来ました。"),
    ("彼はもうすぐ来る。", "彼はもうすぐ来ます。"),
    # negative and past negative
    ("私は肉を食べない。", "私は肉を食べません。"),
    ("今日は会社に行かない。", "今日は会社に行きません。"),
    ("彼は来ない。", "彼は来ません。"),
    ("昨日は何もしなかった。", "昨日は何もしませんでした。"),
    ("バスが来なかった。", "バスが来ませんでした。"),
    # volitional
    ("一緒に映画を見よう。", "一緒に映画を見ましょう。"),
    ("そろそろ帰ろう。", "そろそろ帰りましょう。"),
    ("みんなで練習しよう。", "みんなで練習しましょう。"),
    # potential, passive, causative
    ("彼は漢字が読める。", "彼は漢字が読めます。"),
    ("この魚は生で食べられる。", "この魚は生で食べられます。"),
    ("母は弟に野菜を食べさせる。", "母は弟に野菜を食べさせます。"),
    # ている / てしまう
    ("雨が降っている。", "雨が降っています。"),
    ("猫がソファーで寝ている。", "猫がソファーで寝ています。"),
    ("宿題を忘れてしまった。", "宿題を忘れてしまいました。"),
    ("電車に傘を置いてしまう。", "電車に傘を置いてしまいます。"),
    # い-adjectives
    ("この映画は面白い。", "この映画は面白いです。"),
    ("旅行はとても楽しかった。", "旅行はとても楽しかったです。"),
    ("今日はあまり寒くない。", "今日はあまり寒くないです。"),
    ("昨日は寒くなかった。", "昨日は寒くなかったです。"),
    ("冷たい水が飲みたい。", "冷たい水が飲みたいです。"),
    # copula
    ("彼は学生だ。", "彼は学生です。"),
    ("この部屋は静かだ。", "この部屋は静かです。"),
    ("昨日は日曜日だった。", "昨日は日曜日でした。"),
    ("これは私の本ではない。", "これは私の本ではありません。"),
    ("それは嘘じゃない。", "それは嘘じゃありません。"),
    ("明日はたぶん雨だろう。", "明日はたぶん雨でしょう。"),
    ("彼はもう帰ったのだ。", "彼はもう帰ったのです。"),
    ("今から出かけるんだ。", "今から出かけるんです。"),
    ("今日は時間がない。", "今日は時間がありません。"),
    # other auxiliaries that end a main clause
    ("まだ食べていない。", "まだ食べていません。"),
    ("この問題はもう少し考えてみる。", "この問題はもう少し考えてみます。"),
    ("明日は雨が降るかもしれない。", "明日は雨が降るかもしれません。"),
    ("そろそろ出発するべきだ。", "そろそろ出発するべきです。"),
    ("彼は六時に来るはずだ。", "彼は六時に来るはずです。"),
    ("この薬を飲んだほうがいい。", "この薬を飲んだほうがいいです。"),
    # obligation
    ("明日までにレポートを出さなければならない。", "明日までにレポートを出さなければなりません。"),
    # questions and sentence-final particles
    ("あなたも行くか。", "あなたも行きますか。"),
    ("これは本か。", "これは本ですか。"),
    ("これは本なの？", "これは本ですか？"),
    ("この近くに安いホテルはある？", "この近くに安いホテルはありますか？"),
    ("週末はどこへ行くの？", "週末はどこへ行くのですか？"),
    ("明日の授業は何時からなの？", "明日の授業は何時からですか？"),
    ("この服を試着してもいい？", "この服を試着してもいいですか？"),
    # requests: the plain form of 〜てください is the bare て-form, not blunt 〜てくれ
    ("少し寒いので、窓を閉めて。", "少し寒いので、窓を閉めてください。"),
    ("パスポートを忘れないで。", "パスポートを忘れないでください。"),
    ("ちょっと待って。", "ちょっと待ってください。"),
    ("明日までに返事をくれ。", "明日までに返事をください。"),
    ("どこへ行くのか。", "どこへ行くのですか。"),
    ("このケーキはおいしいね。", "このケーキはおいしいですね。"),
    ("それは便利だよ。", "それは便利ですよ。"),
    # causative, giving verbs, 尊敬語 and 謙譲語
    ("医者は父にたばこをやめさせた。", "医者は父にたばこをやめさせました。"),
    ("子どもを一人で海で泳がせない。", "子どもを一人で海で泳がせません。"),
    ("祖母が手編みのセーターをくれた。", "祖母が手編みのセーターをくれました。"),
    ("毎朝、母に弁当を作ってもらう。", "毎朝、母に弁当を作ってもらいます。"),
    ("妹に英語を教えてあげた。", "妹に英語を教えてあげました。"),
    ("社長は先ほどお帰りになった。", "社長は先ほどお帰りになりました。"),
    ("部長は明日の会議にいらっしゃる。", "部長は明日の会議にいらっしゃいます。"),
    ("先生がそうおっしゃった。", "先生がそうおっしゃいました。"),
    ("校長先生はその件をもうご存じだ。", "校長先生はその件をもうご存じです。"),
    ("明日、先生のお宅に伺う。", "明日、先生のお宅に伺います。"),
    ("先生に京都のお土産を差し上げた。", "先生に京都のお土産を差し上げました。"),
    # そうだ / らしい / ようだ, experience, conjecture
    ("今にも雨が降りそうだ。", "今にも雨が降りそうです。"),
    ("天気予報によると、明日は雪が降るそうだ。", "天気予報によると、明日は雪が降るそうです。"),
    ("この辺りは昔、海だったらしい。", "この辺りは昔、海だったらしいです。"),
    ("隣の家は留守のようだ。", "隣の家は留守のようです。"),
    ("納豆を食べたことがない。", "納豆を食べたことがありません。"),
    ("日本の祭りに参加したことがある？", "日本の祭りに参加したことがありますか？"),
    ("彼はもう家に帰ったかもしれない。", "彼はもう家に帰ったかもしれません。"),
    # subordinate clauses and quotes stay as they are
    ("雨が降っているので、試合は中止になった。", "雨が降っているので、試合は中止になりました。"),
    ("彼は「今日は休みます」と言った。", "彼は「今日は休みます」と言いました。"),
    ("駅に着いたら、電話する。", "駅に着いたら、電話します。"),
    ("『雪国』を読んだことがある。", "『雪国』を読んだことがあります。"),
    ("疲れたけど、まだ頑張る！", "疲れたけど、まだ頑張ります！"),
]

PLAIN_SENTENCES = [plain for plain, _ in ROUND_TRIP]
POLITE_SENTENCES = [polite for _, polite in ROUND_TRIP]


# --- split_sentences ----------------------------------------------------------------------


def test_split_on_terminators():
    text = "今日は晴れだ。明日は雨かな？ほんとうに！そうですね"
    assert split_sentences(text) == [
        "今日は晴れだ。",
        "明日は雨かな？",
        "ほんとうに！",
        "そうですね",
    ]


def test_split_keeps_quotes_inside_sentence():
    text = "彼は「行くよ。すぐ行く！」と言った。『雪国』を読んだ。"
    assert split_sentences(text) == ["彼は「行くよ。すぐ行く！」と言った。", "『雪国』を読んだ。"]


def test_split_on_line_breaks_and_runs_of_terminators():
    text = "本当か！？\n  嘘だろう\r\nいや、本当だ。。"
    assert split_sentences(text) == ["本当か！？", "嘘だろう", "いや、本当だ。。"]


def test_split_ascii_punctuation_and_empty():
    assert split_sentences("Really? Yes!") == ["Really?", "Yes!"]
    assert split_sentences("") == []
    assert split_sentences("  \n ") == []


# --- detect_style / sentence_styles -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "style"),
    [
        ("雨が降っているので、試合は中止になりました。", Style.POLITE),
        ("彼は「今日は休みます」と言った。", Style.PLAIN),
        ("彼女は「行くよ」と言いました。", Style.POLITE),
        ("これはペンです。", Style.POLITE),
        ("明日は晴れるでしょう。", Style.POLITE),
        ("もう行きません。", Style.POLITE),
        ("一緒に行きましょう。", Style.POLITE),
        ("少々お待ちください。", Style.POLITE),
        ("ありがとうございます。", Style.POLITE),
        ("昨日は楽しかったですね。", Style.POLITE),
        ("明日は雨が降るだろう。", Style.PLAIN),
        ("日本の首都は東京である。", Style.PLAIN),
        ("彼は来なかった。", Style.PLAIN),
        ("今日は暑い。", Style.PLAIN),
        ("これは本か。", Style.PLAIN),
        ("もう帰るの？", Style.PLAIN),
        ("早く寝ろ。", Style.PLAIN),
        ("はい。", Style.NONE),
        ("第一章　はじめに", Style.NONE),
        ("東京タワー", Style.NONE),
        ("", Style.NONE),
        ("「今日は休みます。」", Style.POLITE),
        ("「早く来い！」", Style.PLAIN),
    ],
)
def test_detect_style_single_sentence(text, style):
    assert detect_style(text) is style


def test_detect_style_several_sentences():
    assert detect_style("本を読んだ。映画も見た。") is Style.PLAIN
    assert detect_style("本を読みました。映画も見ました。") is Style.POLITE
    assert detect_style("本を読みました。映画も見た。") is Style.MIXED
    assert detect_style("第一章\n本を読みました。") is Style.POLITE
    assert detect_style("はい。いいえ。") is Style.NONE


@pytest.mark.parametrize("sentence", PLAIN_SENTENCES)
def test_detect_plain_round_trip_rows(sentence):
    assert detect_style(sentence) is Style.PLAIN


@pytest.mark.parametrize("sentence", POLITE_SENTENCES)
def test_detect_polite_round_trip_rows(sentence):
    assert detect_style(sentence) is Style.POLITE


def test_sentence_styles():
    text = "はじめに\n今日は晴れです。彼は「休む」と言った。"
    assert sentence_styles(text) == [
        ("はじめに", Style.NONE),
        ("今日は晴れです。", Style.POLITE),
        ("彼は「休む」と言った。", Style.PLAIN),
    ]


def test_import_does_not_load_the_tagger():
    code = (
        "import sys, qeu_utils.text.style_convert, qeu_utils.text.katakana; "
        "from qeu_utils.text.tagger import tagger; "
        "assert tagger.cache_info().currsize == 0 and 'fugashi' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_style_is_a_str_enum():
    assert Style.PLAIN == "plain"
    assert {s.value for s in Style} == {"plain", "polite", "mixed", "none"}


# --- conversion ---------------------------------------------------------------------------


@pytest.mark.parametrize(("plain", "polite"), ROUND_TRIP)
def test_to_polite(plain, polite):
    assert to_polite(plain) == polite


@pytest.mark.parametrize(("plain", "polite"), ROUND_TRIP)
def test_round_trip(plain, polite):
    assert to_plain(to_polite(plain)) == plain


@pytest.mark.parametrize("polite", POLITE_SENTENCES)
def test_to_polite_is_idempotent_on_polite_text(polite):
    assert to_polite(polite) == polite


@pytest.mark.parametrize("plain", PLAIN_SENTENCES)
def test_to_plain_leaves_plain_text_unchanged(plain):
    assert to_plain(plain) == plain


@pytest.mark.parametrize(
    ("polite", "plain"),
    [
        ("日本の首都は東京です。", "日本の首都は東京だ。"),
        ("明日は晴れるでしょうか。", "明日は晴れるだろうか。"),
        ("学生ですので、割引があります。", "学生ですので、割引がある。"),
        ("雨ですから。", "雨だから。"),
        ("学生ですので。", "学生なので。"),
        ("私は行きませんでした。", "私は行かなかった。"),
        ("そこには誰もいませんでした。", "そこには誰もいなかった。"),
        ("ここに本がありました。", "ここに本があった。"),
        ("もう少し待ちましょうか。", "もう少し待とうか。"),
        ("その話は本当ですか？", "その話は本当なの？"),
        ("一緒に昼ご飯を食べませんか？", "一緒に昼ご飯を食べない？"),
        ("明日は晴れるでしょう？", "明日は晴れるだろう？"),
        ("もう一度行きましょうか？", "もう一度行こうか？"),
        ("この辺りは静かで住みやすいです。", "この辺りは静かで住みやすい。"),
        ("もっと早く行くべきでした。", "もっと早く行くべきだった。"),
        ("日本語は難しく感じます。", "日本語は難しく感じる。"),
        # humble verbs become their neutral plain forms
        ("資料はお手元にお配りしております。", "資料はお手元にお配りしている。"),
        ("詳しいことは後ほどご案内いたします。", "詳しいことは後ほどご案内する。"),
    ],
)
def test_to_plain(polite, plain):
    assert to_plain(polite) == plain


@pytest.mark.parametrize(
    ("polite", "plain"),
    [
        # a question word asks on its own: no なの (何なの？ sounds pressing)
        ("何ですか？", "何？"),
        ("これは何ですか？", "これは何？"),
        ("どこですか？", "どこ？"),
        ("トイレはどこですか？", "トイレはどこ？"),
        ("あの人は誰ですか？", "あの人は誰？"),
        ("誕生日はいつですか？", "誕生日はいつ？"),
        ("これはいくらですか？", "これはいくら？"),
        ("ご出身はどちらですか？", "ご出身はどちら？"),
        ("今何時ですか？", "今何時？"),
        # where the bare word would not read as a plain question, なの stays
        ("好きな色はどれですか？", "好きな色はどれなの？"),  # どれ？ tags as an interjection
        ("味はどうですか？", "味はどうなの？"),
        ("何歳ですか？", "何歳なの？"),
        # a question word elsewhere does not end the question: the noun before です does
        ("何の本ですか？", "何の本なの？"),
        ("明日の授業は何時からですか？", "明日の授業は何時からなの？"),
        ("その話は本当ですか？", "その話は本当なの？"),
    ],
)
def test_plain_questions_end_on_their_question_word(polite, plain):
    assert to_plain(polite) == plain
    assert detect_style(plain) is Style.PLAIN


def test_negated_adjectives_take_desu_and_nouns_take_arimasen():
    assert to_polite("この店は高くない。") == "この店は高くないです。"
    assert to_polite("この店は高級ではない。") == "この店は高級ではありません。"
    assert to_polite("もうお金がない。") == "もうお金がありません。"
    assert to_plain("この店は高くありません。") == "この店は高くない。"


def test_explanatory_no_takes_desu():
    # one way only: のです reads back as the written plain のだ
    assert to_polite("疲れているなら、もう帰るの。") == "疲れているなら、もう帰るのです。"
    assert to_plain("疲れているなら、もう帰るのです。") == "疲れているなら、もう帰るのだ。"


def test_tag_question_with_darou_keeps_no_ka():
    assert to_polite("明日は雨だろう？") == "明日は雨でしょう？"


def test_copula_de_aru_becomes_desu():
    # one way only: です reads back as the spoken plain だ
    assert to_polite("日本の首都は東京である。") == "日本の首都は東京です。"
    assert to_polite("それは事実であった。") == "それは事実でした。"
    assert to_plain("富士山は日本でいちばん高い山です。") == "富士山は日本でいちばん高い山だ。"


def test_conversion_keeps_everything_else_byte_for_byte():
    text = "  彼は「今日は休みます」と言った。\n\n『雪国』は　名作だ！  "
    assert to_polite(text) == "  彼は「今日は休みます」と言いました。\n\n『雪国』は　名作です！  "
    assert to_plain(to_polite(text)) == text


def test_whole_quote_sentence_is_converted_inside():
    assert to_polite("「もう帰ろう。」") == "「もう帰りましょう。」"
    assert to_plain("「もう帰りましょう。」") == "「もう帰ろう。」"


def test_multi_sentence_conversion_touches_only_predicates():
    text = "本を読んだ。映画も見ました。はい。"
    assert to_polite(text) == "本を読みました。映画も見ました。はい。"
    assert to_plain(text) == "本を読んだ。映画も見た。はい。"


@pytest.mark.parametrize(
    "text",
    [
        "早く寝ろ。",  # imperative
        "そこへ行くな。",  # prohibition
        "静かにしなさい。",  # なさい command
        "はい。",
        "東京タワー",
        "",
    ],
)
def test_unsupported_or_predicate_less_text_is_unchanged(text):
    assert to_polite(text) == text
    assert to_plain(text) == text


@pytest.mark.parametrize(
    "text",
    ["少々お待ちください。", "ありがとうございます。", "こちらが会場でございます。"],
)
def test_unsupported_polite_forms_are_unchanged_by_to_plain(text):
    assert to_plain(text) == text


@pytest.mark.parametrize(
    "text",
    ["\ud800です。", "行く\x00。", "「「「」", "」」。」", "。。。", "\u3000\u3000", "行く。」」"],
)
def test_odd_input_does_not_raise(text):
    assert isinstance(detect_style(text), Style)
    assert isinstance(to_polite(text), str)
    assert isinstance(to_plain(text), str)


def test_blunt_kure_request_becomes_kudasai_and_back_neutral():
    assert to_polite("ちょっと待ってくれ。") == "ちょっと待ってください。"
    assert to_plain("ちょっと待ってください。") == "ちょっと待って。"


# Real translator-written messages from the Japanese catalogs of Debian's command-line tools
# (/usr/share/locale/ja/LC_MESSAGES/*.mo): a predicate, then a detail after ": " or " - ".
CATALOG_MESSAGES = [
    # coreutils
    ("セキュリティコンテキストの作成に失敗しました: %s",
     "セキュリティコンテキストの作成に失敗した: %s"),
    ("無効な時刻書式です: %s", "無効な時刻書式だ: %s"),
    ("%s: 無効な正規表現です: %s", "%s: 無効な正規表現だ: %s"),
    ("ディレクトリをディレクトリ以外に移動できません: %s -> %s",
     "ディレクトリをディレクトリ以外に移動できない: %s -> %s"),
    # dpkg
    ("%s: '%.250s' の削除に失敗しました: %s", "%s: '%.250s' の削除に失敗した: %s"),
    ("これは不可欠 (essential) パッケージです - 削除すべきではありません",
     "これは不可欠 (essential) パッケージだ - 削除すべきではありません"),
    # gnupg2, tar
    ("一致しません - もう一度", "一致しない - もう一度"),
    ("TAR_OPTIONS を分割できません: %s", "TAR_OPTIONS を分割できない: %s"),
]


@pytest.mark.parametrize(("message", "plain"), CATALOG_MESSAGES)
def test_detail_after_colon_or_dash_is_not_the_predicate(message, plain):
    assert detect_style(message) is Style.POLITE
    assert to_plain(message) == plain
    assert to_polite(plain) == message


@pytest.mark.parametrize(
    ("message", "style"),
    [
        ("エラー: 正規表現が長さ 0 にマッチしました: %s", Style.POLITE),  # coreutils
        ("待機中: 削除できません: %s", Style.POLITE),  # coreutils: a label, then the message
        ("DNS が失敗しました: NXDOMAIN", Style.POLITE),  # avahi
        ("10:30に出発する。", Style.PLAIN),  # a colon with no predicate before it
        ("彼は「注意: 危ない」と言った。", Style.PLAIN),  # a colon inside a quote
    ],
)
def test_separators(message, style):
    assert detect_style(message) is style


def test_terminator_inside_ascii_quotes_does_not_end_a_sentence():
    # glib20, sed, postgres-15: a quoted ? or ! is a symbol, not the end of a sentence
    assert split_sentences("'(?' または '(?-' の後に認識できない文字があります") == [
        "'(?' または '(?-' の後に認識できない文字があります"
    ]
    assert detect_style("'(?' または '(?-' の後に認識できない文字があります") is Style.POLITE
    assert split_sentences("複数の `!' があります") == ["複数の `!' があります"]
    assert split_sentences("'?' か '/' を入力してください。次へ進みます。") == [
        "'?' か '/' を入力してください。",
        "次へ進みます。",
    ]
    assert split_sentences('彼は"行く。"と言った。') == ['彼は"行く。"と言った。']
    assert split_sentences("Really? Yes!") == ["Really?", "Yes!"]


def test_stray_closing_brackets_do_not_hide_the_predicate():
    assert detect_style("行く。」」") is Style.PLAIN
    assert to_polite("行く。」」") == "行きます。」」"


# --- properties ---------------------------------------------------------------------------

# Japanese-heavy text so the tagger sees realistic tokens, mixed with arbitrary characters.
_JA = st.text(
    alphabet=st.sampled_from(list("あいうえおかきくけこだですますたないよねか「」『』。！？、 \n")),
    max_size=40,
)
_ANY = st.text(max_size=40)
_TEXT = st.one_of(
    _ANY,
    _JA,
    st.lists(
        st.sampled_from(POLITE_SENTENCES + PLAIN_SENTENCES + ["\n", "「", "」", "？"]), max_size=4
    ).map("".join),
)
@given(_TEXT)
def test_public_functions_are_total(text):
    assert isinstance(split_sentences(text), list)
    assert all(isinstance(s, Style) for _, s in sentence_styles(text))
    assert isinstance(to_polite(text), str)
    assert isinstance(to_plain(text), str)


@given(_TEXT)
def test_detect_style_returns_a_style(text):
    assert isinstance(detect_style(text), Style)


@given(_TEXT)
def test_conversion_reaches_a_fixed_point(text):
    polite = to_polite(text)
    assert to_polite(polite) == polite
    plain = to_plain(text)
    assert to_plain(plain) == plain


@given(_TEXT)
def test_fast_and_general_sentence_splitting_agree(text):
    assert split_sentences(text) == [text[a:b] for a, b in sentence_spans(text)]


@given(_TEXT)
def test_sentences_are_substrings_in_order(text):
    pos = 0
    for sentence in split_sentences(text):
        found = text.find(sentence, pos)
        assert found >= 0
        pos = found + len(sentence)
