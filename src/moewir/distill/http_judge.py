"""A judge that asks an OpenAI-compatible vision endpoint (vLLM, llama.cpp, Ollama, OpenAI...).

Each query is one ``POST {url}/chat/completions`` holding a single user message: the prompt
(``{rain_type}``, ``{rain_type_name}``, ``{caption}`` and ``{n_references}`` filled in), then
the candidate's rainy input, then its retrieved real rainy references (best first), and, with
``send_target``, the clean target. Images are downscaled so their longer side is at most
``max_side`` and sent inline as base64 JPEG data URLs.

The model answers ``True`` (the rain looks real, a good training sample) or ``Fake``,
optionally followed by ``score: <0..1>``; see :func:`parse_answer`.

HTTP 429 and 5xx answers, timeouts, connection errors and malformed answers are retried up to
``retries`` times with exponential backoff (``backoff``, ``2 * backoff``, ...); other 4xx
answers are not. A query that still has no usable answer gets a ``judge-error`` verdict (and a
warning in the ``moewir.distill`` log); :meth:`HttpJudge.judge` never raises.

The API key, if any, is read from the environment variable named by ``api_key_env``
(``MOEWIR_JUDGE_API_KEY`` by default) and sent as ``Authorization: Bearer <key>``, only to
the configured origin: redirects are never followed (a 3xx is a judge error naming where it
pointed). ``timeout`` bounds the whole request (connect, send, headers and body), not each
socket read; bodies above ``max_response_bytes`` are cut off and refused; the key is
redacted from every text kept or printed (error bodies, malformed answers).
"""
from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from ..data.io import read_image, to_uint8
from .features import RAIN_TYPE_NAMES
from .judges import Query, Verdict

__all__ = ["HttpJudge", "parse_answer", "DEFAULT_PROMPT"]

log = logging.getLogger("moewir.distill")

DEFAULT_PROMPT = (
    "You are checking synthetic training data for image deraining ({rain_type_name}).\n"
    "The first image is a candidate rainy image, described as: \"{caption}\".\n"
    "The {n_references} images after it are real rainy photographs of the same kind of rain.\n"
    "Compare the candidate with the real photos: do its rain streaks or raindrops look like real "
    "rain (shape, density, brightness, blur, how they sit in the scene), and is it a good "
    "training sample?\n"
    "Answer with exactly one word: True if the candidate's rain looks real and the image is a "
    "good training sample, Fake otherwise. You may add \"score: <a number from 0 to 1>\" for how "
    "realistic it is. Write nothing else."
)

_ANSWER = re.compile(r"""[\s"'`*_]*(?:answer\s*:[\s"'`*_]*)?(true|real|fake|false)\b""", re.IGNORECASE)
_SCORE = re.compile(r"score[\s:=*]*(\d+(?:\.\d*)?|\.\d+)", re.IGNORECASE)
_DETAIL_CHARS = 200


def parse_answer(text: str) -> tuple[bool, float] | None:
    """``(keep, score)`` from a model's answer, or None when it is malformed.

    The answer must start with True / Real (keep) or Fake / False, case-insensitively, after
    optional whitespace, quotes, asterisks and ``Answer:``. The score is the number after
    ``score`` when there is one in ``[0, 1]``, else 1.0 for True and 0.0 for Fake.
    """
    match = _ANSWER.match(text)
    if match is None:
        return None
    keep = match.group(1).lower() in ("true", "real")
    found = _SCORE.search(text, match.end())
    score = float(found.group(1)) if found else None
    if score is None or not 0.0 <= score <= 1.0:
        score = 1.0 if keep else 0.0
    return keep, score


def encode_image(path: str, max_side: int) -> str:
    """``path`` as a ``data:image/jpeg;base64,...`` URL, longer side at most ``max_side``."""
    image = Image.fromarray(to_uint8(read_image(path)))
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)  # only ever shrinks
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _one_line(text: str, limit: int = _DETAIL_CHARS) -> str:
    return " ".join(text.split())[:limit]


class _Failure(Exception):
    """One try that gave no usable answer; ``retry`` says whether another try may help."""

    def __init__(self, message: str, retry: bool):
        super().__init__(message)
        self.retry = retry


def _message_text(body: bytes) -> str:
    """The first choice's message text from a chat-completions response body."""
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, LookupError, TypeError):
        raise _Failure(f"unusable response body: {_one_line(body.decode('utf-8', 'replace'), 120)!r}",
                       retry=True) from None
    if not isinstance(content, str):
        raise _Failure(f"response has no message text (content={content!r})", retry=True)
    return content


class HttpJudge:
    """Judge by an OpenAI-compatible vision chat model (see the module docstring).

    ``calls`` counts HTTP requests sent (retries included); ``errors`` counts queries that
    ended with a ``judge-error`` verdict.
    """
    name = "http"

    def __init__(self, *, url: str | None = None, model: str | None = None,
                 api_key_env: str = "MOEWIR_JUDGE_API_KEY", prompt: str = DEFAULT_PROMPT,
                 timeout: float = 60.0, retries: int = 3, backoff: float = 1.0, concurrency: int = 4,
                 max_side: int = 512, send_target: bool = False, temperature: float = 0.0,
                 max_tokens: int = 16, max_response_bytes: int = 1 << 20):
        if not url:
            raise ValueError("judge.http.url is required (the API base URL, e.g. http://localhost:8000/v1)")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"judge.http.url must start with http:// or https://, not {url!r}")
        if not model:
            raise ValueError("judge.http.model is required (the model name the server expects)")
        try:
            prompt.format(rain_type="", rain_type_name="", caption="", n_references=0)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"judge.http.prompt: bad placeholder ({exc!r}); the prompt may use "
                             "{rain_type}, {rain_type_name}, {caption} and {n_references}, "
                             "and must write other braces as {{ }}") from None
        if retries < 0 or concurrency < 1 or max_side < 1 or timeout <= 0 or max_response_bytes < 1:
            raise ValueError("judge.http: need retries >= 0, concurrency >= 1, max_side >= 1, timeout > 0, "
                             "max_response_bytes >= 1")
        self.endpoint = url.rstrip("/") + "/chat/completions"
        self.max_response_bytes = int(max_response_bytes)
        self.model = model
        self.prompt = prompt
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.concurrency = int(concurrency)
        self.max_side = int(max_side)
        self.send_target = bool(send_target)
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.headers = {"Content-Type": "application/json"}
        self._secret = os.environ.get(api_key_env) or None
        if self._secret:
            self.headers["Authorization"] = f"Bearer {self._secret}"
        self.calls = 0
        self.errors = 0
        self._lock = threading.Lock()

    def judge(self, queries: list[Query]) -> list[Verdict]:
        if not queries:
            return []
        with ThreadPoolExecutor(min(self.concurrency, len(queries)), thread_name_prefix="http-judge") as pool:
            return list(pool.map(self._judge_one, queries))

    def request_body(self, query: Query) -> bytes:
        """The JSON request for one query (reads and encodes its images)."""
        text = self.prompt.format(rain_type=query.rain_type,
                                  rain_type_name=RAIN_TYPE_NAMES.get(query.rain_type, query.rain_type),
                                  caption=query.caption, n_references=len(query.references))
        paths = [query.input, *query.references] + ([query.target] if self.send_target else [])
        content = [{"type": "text", "text": text}]
        content += [{"type": "image_url", "image_url": {"url": encode_image(p, self.max_side)}} for p in paths]
        return json.dumps({"model": self.model, "messages": [{"role": "user", "content": content}],
                           "temperature": self.temperature, "max_tokens": self.max_tokens}).encode()

    def _judge_one(self, query: Query) -> Verdict:
        try:
            body = self.request_body(query)
        except (OSError, ValueError) as exc:  # unreadable image (ImageReadError is a ValueError)
            return self._error(query, f"cannot prepare the request: {exc}", tries=0)
        tries = 0
        while True:
            tries += 1
            try:
                return self._verdict(self._complete(body))
            except _Failure as failure:
                if not failure.retry or tries > self.retries:
                    return self._error(query, str(failure), tries)
            time.sleep(self.backoff * 2 ** (tries - 1))

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced (a server may echo it in an error body)."""
        return text.replace(self._secret, "[redacted]") if self._secret else text

    def _verdict(self, text: str) -> Verdict:
        parsed = parse_answer(text)
        if parsed is None:
            raise _Failure(f"malformed answer {_one_line(text, 120)!r}", retry=True)
        keep, score = parsed
        return Verdict(keep, score, "" if keep else "judge-fake", self.redact(text.strip())[:_DETAIL_CHARS])

    def _complete(self, body: bytes) -> str:
        """One POST to the configured origin within ``timeout`` in all; the answer's text, or
        :class:`_Failure`. A watchdog closes the socket at the deadline, so a server that drips
        bytes cannot hold a request longer than that."""
        with self._lock:
            self.calls += 1
        url = urllib.parse.urlsplit(self.endpoint)
        kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = kind(url.hostname, url.port, timeout=self.timeout)
        expired = threading.Event()

        def abort():
            expired.set()
            if conn.sock is not None:
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        watchdog = threading.Timer(self.timeout, abort)
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.request("POST", url.path + (f"?{url.query}" if url.query else ""), body=body, headers=self.headers)
            response = conn.getresponse()
            raw = self._read_capped(response)
        except _Failure:
            raise
        except (OSError, http.client.HTTPException) as exc:
            if expired.is_set() or isinstance(exc, TimeoutError):
                raise _Failure(f"no answer within {self.timeout:g} s", retry=True) from None
            if isinstance(exc, ConnectionRefusedError) or isinstance(exc, socket.gaierror):
                raise _Failure(f"cannot reach {self.endpoint}: {exc}", retry=True) from None
            raise _Failure(f"connection failed: {exc!r}", retry=True) from None
        finally:
            watchdog.cancel()
            conn.close()
        if expired.is_set():
            raise _Failure(f"no answer within {self.timeout:g} s", retry=True)
        status = response.status
        if 300 <= status < 400:
            where = self.redact(response.getheader("Location") or "nowhere")
            raise _Failure(f"HTTP {status} redirect to {where!r} not followed (the API key goes only to "
                           f"{url.scheme}://{url.netloc})", retry=False)
        if status >= 400:
            detail = self.redact(_one_line(raw.decode("utf-8", "replace"), 120))
            raise _Failure(f"HTTP {status} {response.reason}: {detail}", retry=status == 429 or status >= 500)
        try:
            return _message_text(raw)
        except _Failure as failure:
            raise _Failure(self.redact(str(failure)), failure.retry) from None

    def _read_capped(self, response: http.client.HTTPResponse) -> bytes:
        """The body, refused past ``max_response_bytes`` (read in pieces: never held whole)."""
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
            raise _Failure(f"response of {int(declared)} bytes refused (max_response_bytes "
                           f"{self.max_response_bytes})", retry=False)
        pieces, size = [], 0
        while True:
            piece = response.read1(65536)
            if not piece:
                return b"".join(pieces)
            size += len(piece)
            if size > self.max_response_bytes:
                raise _Failure(f"response longer than max_response_bytes ({self.max_response_bytes}) refused",
                               retry=False)
            pieces.append(piece)

    def _error(self, query: Query, problem: str, tries: int) -> Verdict:
        with self._lock:
            self.errors += 1
        problem = self.redact(problem)
        detail = _one_line(f"{problem} (after {tries} {'try' if tries == 1 else 'tries'})" if tries else problem)
        log.warning("http judge: candidate %d (%s): %s", query.index, query.input, detail)
        return Verdict(False, 0.0, "judge-error", detail)
