"""The paper's judge: an LLM scores a continuation 1-5 for relevance and likelihood given the prompt.

Any OpenAI-compatible chat-completions endpoint works; it is configured only from the environment
(TASTE_JUDGE_BASE_URL, TASTE_JUDGE_MODEL, TASTE_JUDGE_API_KEY or OPENAI_API_KEY) and skipped cleanly when absent.
Replies are cached on disk (JSON lines) so a rerun costs nothing and gives the same scores. The key is never logged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The paper's rubric (GPT-4o on the ASR transcript; Table 2 column "GPT-4o score").
RUBRIC = (
    "You will be given the beginning of a spoken story (the prompt) and a continuation produced by a speech "
    "language model, both as automatic transcripts. Rate the continuation on a scale from 1 to 5 for how relevant "
    "it is to the prompt and how likely it is as a natural continuation of it:\n"
    "1 = unrelated or incoherent; 2 = barely related, mostly implausible; 3 = somewhat related and partly plausible; "
    "4 = relevant and plausible with minor issues; 5 = highly relevant, fluent and a very likely continuation.\n"
    "Answer with the score only, a single digit from 1 to 5."
)


class JudgeError(RuntimeError):
    """The judge endpoint failed (HTTP error, timeout, unreadable reply)."""


class JudgeReplyError(JudgeError):
    """The endpoint answered, but not with a usable 1-5 score."""


class JudgeTimeout(JudgeError):
    """The endpoint did not answer within the configured timeout."""


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str
    model: str
    api_key: str = field(default="", repr=False)  # never printed
    timeout_s: float = 30.0
    temperature: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, timeout_s: float = 30.0) -> "JudgeConfig | None":
        """None when TASTE_JUDGE_BASE_URL or TASTE_JUDGE_MODEL is unset: the judge is then skipped."""
        env = os.environ if env is None else env
        base_url, model = env.get("TASTE_JUDGE_BASE_URL", ""), env.get("TASTE_JUDGE_MODEL", "")
        if not base_url or not model:
            return None
        key = env.get("TASTE_JUDGE_API_KEY") or env.get("OPENAI_API_KEY") or ""
        return cls(base_url=base_url.rstrip("/"), model=model, api_key=key, timeout_s=timeout_s)


def build_messages(prompt: str, continuation: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": RUBRIC},
        {"role": "user", "content": f"Prompt: {prompt}\nContinuation: {continuation}\nScore:"},
    ]


_SCORE = re.compile(r"\b([1-5])(?:\.\d+)?\b")


def parse_score(reply: object) -> int:
    """Score from a chat-completions JSON reply; raises JudgeReplyError naming what was wrong."""
    try:
        content = reply["choices"][0]["message"]["content"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError) as err:
        raise JudgeReplyError(f"reply has no choices[0].message.content: {str(reply)[:200]}") from err
    if not isinstance(content, str):
        raise JudgeReplyError(f"reply content is not text: {content!r}")
    match = _SCORE.search(content)
    if not match:
        raise JudgeReplyError(f"no 1-5 score in the judge's reply: {content[:200]!r}")
    return int(match.group(1))


def cache_key(model: str, prompt: str, continuation: str) -> str:
    text = json.dumps([model, RUBRIC, prompt, continuation])
    return hashlib.sha256(text.encode()).hexdigest()


class LLMJudge:
    """Scores (prompt, continuation) pairs; remembers every answered pair in `cache_path`."""

    def __init__(self, config: JudgeConfig, cache_path: str | Path | None = None):
        self.config = config
        self.cache_path = Path(cache_path) if cache_path else None
        self.cache: dict[str, int] = self._read_cache()

    def _read_cache(self) -> dict[str, int]:
        if not self.cache_path or not self.cache_path.exists():
            return {}
        cache = {}
        for line in self.cache_path.read_text().splitlines():
            try:
                row = json.loads(line)
                cache[row["key"]] = int(row["score"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a torn last line from an interrupted run is simply re-asked
        return cache

    def _remember(self, key: str, score: int) -> None:
        self.cache[key] = score
        if self.cache_path:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with self.cache_path.open("a") as fh:
                fh.write(json.dumps({"key": key, "model": self.config.model, "score": score}) + "\n")

    def _post(self, messages: list[dict[str, str]]) -> object:
        body = json.dumps({"model": self.config.model, "messages": messages,
                           "temperature": self.config.temperature, "max_tokens": 5}).encode()
        headers = {"Content-Type": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        request = urllib.request.Request(f"{self.config.base_url}/chat/completions", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                raw = response.read()
        except (socket.timeout, TimeoutError) as err:
            raise JudgeTimeout(f"judge at {self.config.base_url} gave no answer in {self.config.timeout_s} s") from err
        except urllib.error.URLError as err:
            if isinstance(err.reason, (socket.timeout, TimeoutError)):
                raise JudgeTimeout(f"judge at {self.config.base_url} timed out") from err
            raise JudgeError(f"judge at {self.config.base_url} failed: {err}") from err
        try:
            return json.loads(raw)
        except json.JSONDecodeError as err:
            raise JudgeReplyError(f"judge reply is not JSON: {raw[:200]!r}") from err

    def score(self, prompt: str, continuation: str) -> int:
        """1-5; raises JudgeError subclasses on failure (nothing is cached then)."""
        key = cache_key(self.config.model, prompt, continuation)
        if key in self.cache:
            return self.cache[key]
        value = parse_score(self._post(build_messages(prompt, continuation)))
        self._remember(key, value)
        return value

    def score_all(self, prompts: Sequence[str], continuations: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Scores as float [N] (NaN where the judge failed) and the failure messages, one per failed pair."""
        scores, errors = np.full(len(prompts), np.nan), []
        for i, (p, c) in enumerate(zip(prompts, continuations, strict=True)):
            try:
                scores[i] = self.score(p, c)
            except JudgeError as err:
                errors.append(f"item {i}: {err}")
        return scores, errors
