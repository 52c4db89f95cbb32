"""A tiny Llama chat model with a locally trained tokenizer, for tests that need *a* causal LM, not a good one.

Built from a config (no download, random weights), it takes the same code paths as SmolLM2 (AutoModel,
fast tokenizer with a ChatML chat template, save_pretrained/from_pretrained, generate) in a fraction of a
second. Its answers are random tokens, but deterministic for the same texts and seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# ChatML, as SmolLM2 uses, minus its default system prompt: tests assert on exactly what was sent.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tiny_causal_lm(
    directory: Path,
    texts: list[str],
    *,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    intermediate_size: int = 64,
    vocab_size: int = 400,
    seed: int = 0,
) -> str:
    """Write a tiny LlamaForCausalLM + byte-level BPE tokenizer (trained on ``texts``) into ``directory``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _chat_tokenizer(texts, vocab_size)
    ids = {
        name: tokenizer.convert_tokens_to_ids(token)
        for name, token in (("pad", "<|endoftext|>"), ("bos", "<|im_start|>"), ("eos", "<|im_end|>"))
    }
    # Untied output head: with tied embeddings a random model's greedy answer just repeats the prompt's last
    # token (a newline, stripped to nothing); an independent head gives a visible, deterministic answer.
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        pad_token_id=ids["pad"],
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the same texts and seed give the same tiny model
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"]
    )
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return str(directory)


def _chat_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on ``texts``, with ChatML special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not texts:
        raise ValueError("texts: the tokenizer needs some text to learn a vocabulary from")
    raw = Tokenizer(models.BPE())
    # Byte-level: any text (accents, emoji) encodes without an unknown token, as in real LLM tokenizers.
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    raw.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=1024,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
