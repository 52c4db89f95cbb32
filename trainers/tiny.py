"""A tiny BERT with a locally trained WordPiece tokenizer, for tests that need *a* model, not a good one.

Built from a config (no download, random weights), it exercises exactly the code paths of the real
MiniLM (AutoModel, fast tokenizer, save_pretrained/from_pretrained) and trains in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_encoder(
    directory: Path,
    texts: list[str],
    *,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    intermediate_size: int = 64,
    vocab_size: int = 400,
    seed: int = 0,
    dropout: float = 0.1,
) -> str:
    """Write a tiny BERT + WordPiece tokenizer (trained on ``texts``) into ``directory``; return its path.

    ``dropout`` 0 makes training a pure function of the data order (no random masks), for tests that
    compare two trainings weight by weight.
    """
    import torch
    from transformers import BertConfig, BertModel

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _fast_tokenizer(texts, vocab_size)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the same texts and seed give the same tiny model
        model = BertModel(config)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return str(directory)


def _fast_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A BERT-style WordPiece tokenizer ([CLS] text [SEP]) trained on ``texts``, as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if not texts:
        raise ValueError("texts: the tokenizer needs some text to learn a vocabulary from")
    raw = Tokenizer(models.WordPiece(_vocabulary(texts, vocab_size), unk_token="[UNK]"))
    raw.normalizer = normalizers.BertNormalizer(lowercase=True)
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    raw.decoder = decoders.WordPiece()
    cls_id, sep_id = raw.token_to_id("[CLS]"), raw.token_to_id("[SEP]")
    raw.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )


def _vocabulary(texts: list[str], vocab_size: int) -> dict[str, int]:
    """Special tokens, every character (alone and as a ``##`` continuation), then the most frequent words.

    Built by counting, not by the WordPiece trainer: its merges break ties in hash order, so the same texts
    gave a different vocabulary in each process, and with it a different tiny model per test session.
    """
    from tokenizers import normalizers, pre_tokenizers

    normalizer, splitter = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts: dict[str, int] = {}
    for text in texts:
        for word, _span in splitter.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[word] = counts.get(word, 0) + 1
    characters = sorted({c for word in counts for c in word})
    tokens = SPECIAL_TOKENS + characters + [f"##{c}" for c in characters]
    room = max(0, vocab_size - len(tokens))
    tokens += [w for w in sorted(counts, key=lambda w: (-counts[w], w)) if len(w) > 1][:room]
    return {token: index for index, token in enumerate(tokens)}
