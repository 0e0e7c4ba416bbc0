"""LLM judge against a local fake OpenAI-compatible server: good reply, malformed reply, timeout, cache, skip."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from taste.evaluation.llm_judge import (
    JudgeConfig,
    JudgeReplyError,
    JudgeTimeout,
    LLMJudge,
    parse_score,
)


class FakeServer:
    """Answers /chat/completions with `self.reply` (a dict, raw bytes, or "sleep")."""

    def __init__(self):
        self.reply: object = {"choices": [{"message": {"role": "assistant", "content": "4"}}]}
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append({"path": self.path, **json.loads(body)})
                outer.headers.append(dict(self.headers))
                if outer.reply == "sleep":
                    time.sleep(1.5)
                    return
                data = outer.reply if isinstance(outer.reply, bytes) else json.dumps(outer.reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = FakeServer()
    yield s
    s.close()


def _judge(server, tmp_path, timeout=5.0):
    config = JudgeConfig(base_url=server.url, model="fake-judge", api_key="sk-secret", timeout_s=timeout)
    return LLMJudge(config, cache_path=tmp_path / "cache.jsonl")


def test_good_reply_is_scored_and_cached(server, tmp_path):
    judge = _judge(server, tmp_path)
    assert judge.score("once upon a time", "there was a cat") == 4
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["model"] == "fake-judge"
    assert "once upon a time" in request["messages"][-1]["content"]
    assert server.headers[0]["Authorization"] == "Bearer sk-secret"
    # A new judge over the same cache answers without asking the server again.
    server.reply = b"not json"
    again = _judge(server, tmp_path)
    assert again.score("once upon a time", "there was a cat") == 4
    assert len(server.requests) == 1
    assert "sk-secret" not in (tmp_path / "cache.jsonl").read_text()


def test_malformed_reply_raises_and_is_not_cached(server, tmp_path):
    judge = _judge(server, tmp_path)
    server.reply = {"choices": [{"message": {"content": "I would rather not say"}}]}
    with pytest.raises(JudgeReplyError, match="no 1-5 score"):
        judge.score("p", "c")
    server.reply = b"<html>oops</html>"
    with pytest.raises(JudgeReplyError, match="not JSON"):
        judge.score("p", "c")
    server.reply = {"error": "bad"}
    with pytest.raises(JudgeReplyError, match="choices"):
        judge.score("p", "c")
    assert not (tmp_path / "cache.jsonl").exists()


def test_timeout_raises_and_score_all_records_nan(server, tmp_path):
    judge = _judge(server, tmp_path, timeout=0.3)
    server.reply = "sleep"
    with pytest.raises(JudgeTimeout):
        judge.score("p", "c")
    scores, errors = judge.score_all(["p"], ["c2"])
    assert np.isnan(scores[0]) and len(errors) == 1
    assert "timed out" in errors[0] or "no answer" in errors[0]


def test_key_never_in_repr():
    config = JudgeConfig(base_url="http://x", model="m", api_key="sk-secret")
    assert "sk-secret" not in repr(config)


def test_from_env_skips_cleanly_when_unconfigured():
    assert JudgeConfig.from_env({}) is None
    assert JudgeConfig.from_env({"TASTE_JUDGE_BASE_URL": "http://x"}) is None
    config = JudgeConfig.from_env({"TASTE_JUDGE_BASE_URL": "http://x/", "TASTE_JUDGE_MODEL": "m", "OPENAI_API_KEY": "k"})
    assert config.base_url == "http://x" and config.api_key == "k"


@pytest.mark.parametrize("content, score", [("5", 5), ("Score: 3.", 3), ("2/5 - weak", 2), (" 1\n", 1)])
def test_parse_score(content, score):
    assert parse_score({"choices": [{"message": {"content": content}}]}) == score


@pytest.mark.parametrize("content", ["0", "6", "ten", ""])
def test_parse_score_rejects(content):
    with pytest.raises(JudgeReplyError):
        parse_score({"choices": [{"message": {"content": content}}]})
