"""A tiny, randomly initialised GPT-2 and word-level tokenizer, built and saved by the tests
themselves (nothing is downloaded), and the reference output of ``model.generate``."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

WORDS = [
    "user:",
    "assistant:",
    "system:",
    "hello",
    "world",
    "tiny",
    "model",
    "says",
    "hi",
    "the",
    "a",
    "stream",
    "of",
    "tokens",
    "and",
    "more",
    "words",
    "here",
]


def build_tiny_gpt2(path: Path) -> Path:
    """Save the tiny model and its tokenizer under ``path`` (seeded: always the same)."""
    vocab = {"[UNK]": 0, "[EOS]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", eos_token="[EOS]", pad_token="[EOS]"
    )
    fast.save_pretrained(path)
    torch.manual_seed(1234)
    config = GPT2Config(
        vocab_size=len(vocab),
        n_positions=1024,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=1,
        eos_token_id=1,
    )
    GPT2LMHeadModel(config).save_pretrained(path)
    return path


def reference(path: Path, prompt: str, max_new_tokens: int) -> tuple[str, int, int]:
    """Greedy ``generate`` for one user message: (text, prompt tokens, new tokens)."""
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
    model = GPT2LMHeadModel.from_pretrained(path)
    ids = tokenizer(f"user: {prompt}\nassistant:", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=1,
        )
    new = out[0, ids.shape[-1] :]
    return tokenizer.decode(new, skip_special_tokens=True), int(ids.shape[-1]), int(new.shape[-1])
