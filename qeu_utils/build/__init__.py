"""Dataset builders: one module per category of the initialization dataset (style, katakana,
country, kanji, food), ``mix`` to sample and split them, ``common`` for what they share."""
