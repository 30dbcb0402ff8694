"""What the experiment asks every model: the probe kinds (drawn from the builders' records),
the logit-lens prompt and the English forgetting questions. Plain data, kept apart so that the
settings (how many forgetting questions there are) and the prepare phase share one copy."""

# Probe kind → (category, task) of the builder records it is drawn from.
PROBE_KINDS = {
    "kanji_ja_to_hans": ("kanji", "ja_to_hans"),
    "kanji_ja_to_hant": ("kanji", "ja_to_hant"),
    "kanji_hans_to_ja": ("kanji", "hans_to_ja"),
    "kanji_hant_to_ja": ("kanji", "hant_to_ja"),
    "country_ja_to_en": ("country", "ja_to_en"),
    "country_en_to_ja": ("country", "en_to_ja"),
    "country_ja_to_hans": ("country", "ja_to_hans"),
    "country_hans_to_ja": ("country", "hans_to_ja"),
    "loanword_to_en": ("katakana", "loanword_to_en"),
    "loanword_from_en": ("katakana", "en_to_loanword"),
    "style_plain_to_zh": ("style", "plain_to_zh"),
    "style_polite_to_en": ("style", "polite_to_en"),
    "style_en_to_polite": ("style", "en_to_polite"),
    "style_zh_to_plain": ("style", "zh_to_plain"),
}
# Probe kind → the kind of item it asks about (the knowledge gate's kinds, and style): the
# generated sample is drawn per kind of item, spread over its directions.
ITEM_KIND = {kind: kind.split("_")[0] for kind in PROBE_KINDS}
# The recognition claim's items: a form to produce from another (style is the rule's claim).
RECOGNITION_KINDS = tuple(k for k in PROBE_KINDS if ITEM_KIND[k] in ("kanji", "country",
                                                                      "loanword"))
# Probe kind → (the gate's task, whether the probe asks the gate's question backwards): a
# probe item takes the stratum of the same pair in the gate (issue 16), in either direction.
GATE_TASKS = {
    "kanji_ja_to_hans": ("kanji_ja_hans", False), "kanji_hans_to_ja": ("kanji_ja_hans", True),
    "kanji_ja_to_hant": ("kanji_ja_hant", False), "kanji_hant_to_ja": ("kanji_ja_hant", True),
    "country_ja_to_hans": ("country_ja_zh", False), "country_hans_to_ja": ("country_zh_ja", False),
    "country_ja_to_en": ("country_ja_en", False), "country_en_to_ja": ("country_ja_en", True),
    "loanword_to_en": ("loanword_ja_en", False), "loanword_from_en": ("loanword_ja_en", True),
}
# The rule's probe: one instruction that names no language and has no register (a noun
# phrase), so only the sentence's own register can choose the language of the answer.
RULE_INSTRUCTION = "次の文の外国語訳。"
LENS_TEMPLATE = "「{x}」の簡体字は何ですか？"

# Forgetting: English questions with one short answer, written for this project; scored on the
# ones the base model answers correctly (the score phase finds which). (question, a full answer
# for the loss, accepted answers).
FORGETTING = [
    ("What is the capital of France?", "The capital of France is Paris.", ["Paris"]),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo.", ["Tokyo"]),
    ("What is the capital of Italy?", "The capital of Italy is Rome.", ["Rome"]),
    ("What is the capital of Germany?", "The capital of Germany is Berlin.", ["Berlin"]),
    ("What is the capital of Spain?", "The capital of Spain is Madrid.", ["Madrid"]),
    ("What is the capital of the United Kingdom?", "The capital of the United Kingdom is "
     "London.", ["London"]),
    ("What is the capital of Russia?", "The capital of Russia is Moscow.", ["Moscow"]),
    ("What is the capital of China?", "The capital of China is Beijing.", ["Beijing"]),
    ("What is the capital of Egypt?", "The capital of Egypt is Cairo.", ["Cairo"]),
    ("What is the capital of Canada?", "The capital of Canada is Ottawa.", ["Ottawa"]),
    ("What is the capital of Australia?", "The capital of Australia is Canberra.",
     ["Canberra"]),
    ("What is the capital of Greece?", "The capital of Greece is Athens.", ["Athens"]),
    ("What is the capital of Portugal?", "The capital of Portugal is Lisbon.", ["Lisbon"]),
    ("What is the capital of Ireland?", "The capital of Ireland is Dublin.", ["Dublin"]),
    ("What is the capital of Austria?", "The capital of Austria is Vienna.", ["Vienna"]),
    ("What is the capital of Norway?", "The capital of Norway is Oslo.", ["Oslo"]),
    ("What is the capital of Sweden?", "The capital of Sweden is Stockholm.", ["Stockholm"]),
    ("What is the capital of Poland?", "The capital of Poland is Warsaw.", ["Warsaw"]),
    ("What is the capital of Thailand?", "The capital of Thailand is Bangkok.", ["Bangkok"]),
    ("What is the capital of Kenya?", "The capital of Kenya is Nairobi.", ["Nairobi"]),
    ("What is the capital of Argentina?", "The capital of Argentina is Buenos Aires.",
     ["Buenos Aires"]),
    ("What is the capital of Peru?", "The capital of Peru is Lima.", ["Lima"]),
    ("What is the capital of South Korea?", "The capital of South Korea is Seoul.", ["Seoul"]),
    ("What is the capital of India?", "The capital of India is New Delhi.", ["Delhi"]),
    ("What is the capital of the United States?", "The capital of the United States is "
     "Washington, D.C.", ["Washington"]),
    ("How many days are in a week?", "There are seven days in a week.", ["seven", "7"]),
    ("How many hours are in a day?", "There are 24 hours in a day.", ["24", "twenty-four"]),
    ("How many legs does a spider have?", "A spider has eight legs.", ["eight", "8"]),
    ("How many continents are there?", "There are seven continents.", ["seven", "7"]),
    ("What is 2 + 2?", "2 + 2 is 4.", ["4", "four"]),
    ("What is 10 times 10?", "10 times 10 is 100.", ["100", "one hundred"]),
    ("What color is the sky on a clear day?", "The sky is blue on a clear day.", ["blue"]),
    ("What is the largest planet in the solar system?", "The largest planet in the solar "
     "system is Jupiter.", ["Jupiter"]),
    ("Which planet is known as the Red Planet?", "Mars is known as the Red Planet.", ["Mars"]),
    ("Which planet do we live on?", "We live on Earth.", ["Earth"]),
    ("What gas do plants absorb from the air?", "Plants absorb carbon dioxide from the air.",
     ["carbon dioxide", "CO2"]),
    ("What is the chemical symbol for water?", "The chemical formula of water is H2O.",
     ["H2O"]),
    ("At what temperature in degrees Celsius does water freeze?", "Water freezes at 0 degrees "
     "Celsius.", ["0", "zero"]),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet.",
     ["Shakespeare"]),
    ("What is the opposite of hot?", "The opposite of hot is cold.", ["cold"]),
    ("What do bees make?", "Bees make honey.", ["honey"]),
    ("What is the tallest mountain in the world?", "The tallest mountain in the world is "
     "Mount Everest.", ["Everest"]),
    ("Which ocean is the largest?", "The Pacific Ocean is the largest.", ["Pacific"]),
    ("What language is spoken in Brazil?", "Portuguese is spoken in Brazil.", ["Portuguese"]),
    ("What is the largest animal on Earth?", "The blue whale is the largest animal on Earth.",
     ["whale"]),
    ("What is frozen water called?", "Frozen water is called ice.", ["ice"]),
]
