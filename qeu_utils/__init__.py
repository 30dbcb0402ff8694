"""qeu_utils: the QEU initialization curriculum for fine-tuning LLMs in Japanese.

The pipeline, in the order the package is laid out: text tools (style, katakana, kanji,
countries) → dataset builders (build/) → training (train) → analysis (analysis) → notebooks.
Nothing here downloads anything at import time.
"""

__version__ = "0.1.0"
