"""Model input tokens, counted with the real o200k_base BPE (the GPT-4o / GPT-4.1 / o-series tokenizer).

tiktoken downloads its tables on first use, which a machine without internet cannot do. The
``bpe-openai`` wheel (pinned in the ``bench`` extra) ships the official ``o200k_base.tiktoken`` file; it
is checked against the sha256 that tiktoken itself expects for that file (so a changed or corrupted
file fails loudly, never counts differently), written into a private tiktoken cache under the name
tiktoken looks for, and loaded by tiktoken offline.

A chat request is counted as OpenAI's cookbook counts chat messages (3 tokens per message, the role,
the content, a tool call's name and arguments, 3 tokens priming the reply), plus the compact JSON of
the tool definitions and of the response format: the API renders those in its own internal format,
so that part is an estimate, made the same way for every contender.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import tempfile
from importlib import resources
from typing import Any

URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"  # tiktoken's expected_hash
PER_MESSAGE, REPLY_PRIMING = 3, 3


class TokenizerUnavailable(RuntimeError):
    """The o200k_base file could not be had offline or is not the official one."""


@functools.cache
def encoding() -> Any:
    """tiktoken's o200k_base ``Encoding``, loaded offline from the file bpe-openai ships (sha256 checked)."""
    try:
        packed = resources.files("bpe_openai").joinpath("data/o200k_base.tiktoken.gz").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise TokenizerUnavailable("install the bench extra: pip install -e '.[bench]' (bpe-openai ships "
                                   "o200k_base)") from exc
    raw = gzip.decompress(packed)
    found = hashlib.sha256(raw).hexdigest()
    if found != SHA256:
        raise TokenizerUnavailable(f"bpe-openai's o200k_base file has sha256 {found}, not the official {SHA256}")
    cache = tempfile.mkdtemp(prefix="bench-tiktoken-")
    with open(os.path.join(cache, hashlib.sha1(URL.encode()).hexdigest()), "wb") as out:  # tiktoken's cache name
        out.write(raw)
    previous = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = cache
    try:
        import tiktoken

        return tiktoken.get_encoding("o200k_base")
    finally:
        if previous is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = previous


@functools.lru_cache(maxsize=65_536)
def count(text: str) -> int:
    """Tokens of ``text`` (special-token look-alikes counted as plain text)."""
    return len(encoding().encode_ordinary(text))


def message_tokens(message: dict[str, Any]) -> int:
    """One chat message: 3 + role + content + name + each tool call's name and arguments."""
    tokens = PER_MESSAGE + count(str(message.get("role", "")))
    content = message.get("content")
    if isinstance(content, str):
        tokens += count(content)
    elif content is not None:
        tokens += count(json.dumps(content, ensure_ascii=False))
    if message.get("name"):
        tokens += count(str(message["name"])) + 1
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        tokens += count(str(function.get("name", ""))) + count(str(function.get("arguments", "")))
    return tokens


def request_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                   response_format: dict[str, Any] | None) -> int:
    """Input tokens of one chat request (messages, tool definitions, response format)."""
    tokens = REPLY_PRIMING + sum(message_tokens(m) for m in messages)
    if tools:
        tokens += count(json.dumps(tools, ensure_ascii=False, separators=(",", ":")))
    if response_format:
        tokens += count(json.dumps(response_format, ensure_ascii=False, separators=(",", ":")))
    return tokens
