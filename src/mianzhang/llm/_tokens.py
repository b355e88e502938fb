"""Counting tokens when no tokenizer is at hand. No I/O.

Used only when an upstream reports no usage: completion tokens are then the number of chunks
that carried text (OpenAI-compatible servers send one token per chunk), and prompt tokens are
estimated here. The estimate is marked ``estimated=True`` in :class:`~mianzhang.llm.Usage`.
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = ["estimate_prompt_tokens", "estimate_tokens"]

# Words, numbers and single punctuation marks: close to BPE counts for English prose.
_PIECE: Final = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_PER_MESSAGE: Final = 4  # role and separators, as OpenAI's cookbook counts them


def estimate_tokens(text: str) -> int:
    """An estimate of the BPE token count of ``text`` (words + punctuation marks)."""
    count = 0
    for match in _PIECE.finditer(text):
        piece = match.group()
        # long words split into several BPE tokens: one per 4 characters beyond the first 4
        count += 1 + max(0, (len(piece) - 1) // 4)
    return count


def estimate_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """An estimate of the prompt tokens of OpenAI chat ``messages``."""
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += _PER_MESSAGE
        content = message.get("content")
        if isinstance(content, str):
            total += estimate_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += estimate_tokens(part["text"])
    return total
