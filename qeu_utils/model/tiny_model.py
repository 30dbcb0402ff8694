"""The ``tiny-random`` test model: a 2-layer Llama with random weights and a byte-level BPE
tokenizer trained in process, so tests exercise the real code paths without any download.

Byte-level BPE means every string — Japanese, Chinese, English, emoji — encodes and decodes
losslessly; the few merges learned from the sample below only make common pieces shorter.
The tokenizer uses the same ChatML template as SmolLM2, so chat formatting is tested as it
runs on the default model.
"""

from __future__ import annotations

from pathlib import Path

from qeu_utils.core.atomic import atomic_directory

# Bump when the recipe below changes, so stale cached copies are rebuilt.
TINY_RANDOM_VERSION = 1
SEED = 0

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Enough of each script for the BPE trainer to learn a few merges per language.
_SAMPLE = [
    "今日は雨が降っています。明日は晴れるでしょう。",
    "私は毎朝コーヒーを飲みます。日本語を勉強しています。",
    "東京は日本の首都だ。富士山は高い。",
    "今天下雨。我每天早上喝咖啡。北京是中国的首都。",
    "臺灣的鐵路很方便。學習漢字很有趣。",
    "It is raining today. I drink coffee every morning.",
    "Tokyo is the capital of Japan. Mount Fuji is high.",
    "### 指示:\n次の文を中国語に翻訳してください。\n### 応答:\n",
]


def build_tiny_random(target: Path) -> Path:
    """Build (once) and return the directory of the tiny random model."""
    target = Path(target) / f"v{TINY_RANDOM_VERSION}"
    if (target / "config.json").is_file():
        return target
    tokenizer = _train_tokenizer()
    model = _random_llama(vocab_size=len(tokenizer), tokenizer=tokenizer)
    with atomic_directory(target) as tmp:
        tokenizer.save_pretrained(tmp)
        model.save_pretrained(tmp, safe_serialization=True)
    return target


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_SAMPLE, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        model_max_length=512,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _random_llama(vocab_size: int, tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(SEED)
    return LlamaForCausalLM(config)
