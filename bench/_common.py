"""Pieces several benchmarks share: the repository, git revisions for A/B runs, and an OpenAI
upstream chunk as it comes over the wire."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["ROOT", "git", "merge_base", "raw_chunk"]

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    """``git ARGS`` in the repository; its stdout, stripped (fails on a non-zero exit)."""
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def merge_base(rev: str | None = None) -> str:
    """``rev`` if given, else the commit where this branch left ``main`` (the A side)."""
    return rev or git("merge-base", "HEAD", "main")


def raw_chunk(token: str | None) -> str:
    """An OpenAI ``chat.completion.chunk`` as an upstream sends it: the assistant role delta
    for ``None``, else the content delta ``token`` (plain text, no JSON escaping needed)."""
    delta = '{"role":"assistant","content":""}' if token is None else f'{{"content":"{token}"}}'
    return (
        '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
        '"model":"fake-up","system_fingerprint":null,'
        f'"choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":null}}]}}'
    )
