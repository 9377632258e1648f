"""HttpJudge against a stub OpenAI-compatible server on loopback."""
from __future__ import annotations

import base64
import io
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from moewir.data.io import write_image
from moewir.distill.http_judge import DEFAULT_PROMPT, HttpJudge, parse_answer
from moewir.distill.judges import Query


def chat(text) -> tuple[int, bytes, float]:
    """A 200 chat-completions reply whose message content is ``text``."""
    return 200, json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode(), 0.0


class Stub:
    """Records each request (headers + JSON body) and answers with ``reply(body)``, which returns
    ``(status, body bytes, delay s)``; by default the scripted replies in order, the last repeated."""

    def __init__(self, url: str, stop: threading.Event):
        self.url = url
        self.stop = stop
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.script([chat("True")])

    def script(self, replies: list[tuple[int, bytes, float]]) -> None:
        queue = list(replies)

        def reply(_body):
            with self.lock:
                return queue.pop(0) if len(queue) > 1 else queue[0]
        self.reply = reply


@pytest.fixture
def stub():
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            body = json.loads(raw)
            with server.stub.lock:
                server.stub.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            status, payload, delay = server.stub.reply(body)
            if delay and stop.wait(delay):
                return
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.stub = Stub(f"http://127.0.0.1:{server.server_address[1]}/v1", stop)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server.stub
    stop.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def make_query(tmp_path):
    rng = np.random.default_rng(0)

    def image(name, h=40, w=64):
        path = tmp_path / name
        write_image(path, rng.random((h, w, 3), dtype=np.float32))
        return str(path)

    def make(index=0, caption="day photo, heavy rain streaks", n_refs=2):
        refs = [image(f"ref{index}_{k}.png", 48, 30) for k in range(n_refs)]
        return Query(index=index, input=image(f"in{index}.png"), target=image(f"gt{index}.png"), rain_type="drs",
                     caption=caption, references=refs, visual=np.full(n_refs, 0.5), ssim=np.full(n_refs, 0.3))
    return make


def judge_for(stub, **options) -> HttpJudge:
    return HttpJudge(url=stub.url, model="test-vlm", **{"backoff": 0.01, "retries": 2, **options})


def decode(data_url: str) -> Image.Image:
    prefix = "data:image/jpeg;base64,"
    assert data_url.startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(data_url[len(prefix):], validate=True)))
    assert image.format == "JPEG"
    return image


def test_true_answer_and_request(stub, make_query, monkeypatch):
    monkeypatch.setenv("MOEWIR_JUDGE_API_KEY", "sekret")
    stub.script([chat("True\nscore: 0.8")])
    prompt = "{rain_type} = {rain_type_name}; caption: {caption}; {n_references} references"
    judge = judge_for(stub, prompt=prompt, max_side=32)
    [verdict] = judge.judge([make_query(n_refs=3)])
    assert (verdict.keep, verdict.score, verdict.reason) == (True, 0.8, "")
    assert verdict.detail == "True\nscore: 0.8"
    assert (judge.calls, judge.errors) == (1, 0)

    [request] = stub.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sekret"
    body = request["body"]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("test-vlm", 0, 16)
    [message] = body["messages"]
    assert message["role"] == "user"
    text, *images = message["content"]
    assert text == {"type": "text",
                    "text": "drs = daytime rain streaks; caption: day photo, heavy rain streaks; 3 references"}
    assert len(images) == 1 + 3
    for part in images:
        assert part["type"] == "image_url"
        assert max(decode(part["image_url"]["url"]).size) <= 32
    assert decode(images[0]["image_url"]["url"]).size == (32, 20)  # the 64 x 40 input, aspect kept


def test_default_prompt_no_key_and_target(stub, make_query, monkeypatch):
    monkeypatch.delenv("MOEWIR_JUDGE_API_KEY", raising=False)
    judge = judge_for(stub, send_target=True)
    [verdict] = judge.judge([make_query(n_refs=2)])
    assert verdict.keep and verdict.score == 1.0
    [request] = stub.requests
    assert "Authorization" not in request["headers"]
    text, *images = request["body"]["messages"][0]["content"]
    assert text["text"] == DEFAULT_PROMPT.format(rain_type="drs", rain_type_name="daytime rain streaks",
                                                 caption="day photo, heavy rain streaks", n_references=2)
    assert len(images) == 1 + 2 + 1
    assert decode(images[-1]["image_url"]["url"]).size == (64, 40)  # under max_side: not resized


def test_fake_answer(stub, make_query):
    stub.script([chat("Fake")])
    judge = judge_for(stub)
    [verdict] = judge.judge([make_query()])
    assert (verdict.keep, verdict.score, verdict.reason, verdict.detail) == (False, 0.0, "judge-fake", "Fake")
    assert (judge.calls, judge.errors) == (1, 0)


@pytest.mark.parametrize("reply", [
    chat("maybe"),
    chat(""),
    chat(None),
    (200, b"<html>not json</html>", 0.0),
    (200, json.dumps({"error": "overloaded"}).encode(), 0.0),
    (200, json.dumps({"choices": []}).encode(), 0.0),
], ids=["maybe", "empty", "null", "not-json", "no-choices", "empty-choices"])
def test_malformed_answer_is_judge_error_after_retries(stub, make_query, caplog, reply):
    stub.script([reply])
    judge = judge_for(stub, retries=2)
    with caplog.at_level(logging.WARNING, logger="moewir.distill"):
        [verdict] = judge.judge([make_query()])
    assert (verdict.keep, verdict.score, verdict.reason) == (False, 0.0, "judge-error")
    assert verdict.detail and "\n" not in verdict.detail and "after 3 tries" in verdict.detail
    assert len(stub.requests) == 3 and judge.calls == 3 and judge.errors == 1
    assert any(r.levelno == logging.WARNING and "candidate 0" in r.message for r in caplog.records)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_error_is_retried(stub, make_query, status):
    stub.script([(status, b'{"error": "busy"}', 0.0), chat("real, score: 0.6")])
    judge = judge_for(stub)
    [verdict] = judge.judge([make_query()])
    assert (verdict.keep, verdict.score, verdict.reason) == (True, 0.6, "")
    assert len(stub.requests) == 2 and (judge.calls, judge.errors) == (2, 0)


def test_client_error_is_not_retried(stub, make_query):
    stub.script([(400, b'{"error": "image too large"}', 0.0), chat("True")])
    judge = judge_for(stub, retries=3)
    [verdict] = judge.judge([make_query()])
    assert verdict.reason == "judge-error"
    assert "HTTP 400" in verdict.detail and "image too large" in verdict.detail
    assert len(stub.requests) == 1 and (judge.calls, judge.errors) == (1, 1)


def test_timeout_then_later_query_works(stub, make_query):
    slow = chat("True")[:2] + (5.0,)
    stub.script([slow, slow, chat("Fake score: 0.1")])
    judge = judge_for(stub, retries=1, timeout=0.3)
    [verdict] = judge.judge([make_query()])
    assert verdict.reason == "judge-error" and "0.3 s" in verdict.detail
    assert len(stub.requests) == 2
    [verdict] = judge.judge([make_query(index=1)])
    assert (verdict.keep, verdict.score, verdict.reason) == (False, 0.1, "judge-fake")
    assert (judge.calls, judge.errors) == (3, 1)


def test_unreachable_server_is_judge_error(make_query):
    judge = HttpJudge(url="http://127.0.0.1:9/v1", model="m", retries=1, backoff=0.01, timeout=2)
    [verdict] = judge.judge([make_query()])
    assert verdict.reason == "judge-error" and "after 2 tries" in verdict.detail
    assert (judge.calls, judge.errors) == (2, 1)


def test_unreadable_image_is_judge_error_without_request(stub, make_query, tmp_path):
    query = make_query()
    query.references[1] = str(tmp_path / "missing.png")
    judge = judge_for(stub)
    [verdict] = judge.judge([query])
    assert verdict.reason == "judge-error" and "missing.png" in verdict.detail
    assert stub.requests == [] and (judge.calls, judge.errors) == (0, 1)


def test_verdicts_follow_query_order(stub, make_query):
    def reply(body):  # earlier queries answer later, so completion order is reversed
        caption = body["messages"][0]["content"][0]["text"]
        index = int(caption.split("#")[1])
        return chat(f"{'True' if index % 3 else 'Fake'} score: {index / 10}")[:2] + (0.02 * (6 - index),)
    stub.reply = reply
    queries = [make_query(index=i, caption=f"#{i}#", n_refs=1) for i in range(6)]
    judge = judge_for(stub, prompt="{caption}", concurrency=4)
    verdicts = judge.judge(queries)
    assert [v.keep for v in verdicts] == [i % 3 != 0 for i in range(6)]
    assert [v.score for v in verdicts] == [i / 10 for i in range(6)]
    assert judge.judge([]) == []


@pytest.mark.parametrize("text, expected", [
    ("True", (True, 1.0)),
    ("Fake", (False, 0.0)),
    ("true score: 0.8", (True, 0.8)),
    ("  **True**\nScore: .75", (True, 0.75)),
    ('"Fake" (score=0.2)', (False, 0.2)),
    ("Answer: FAKE", (False, 0.0)),
    ("answer: **real**", (True, 1.0)),
    ("False.", (False, 0.0)),
    ("True score: 7", (True, 1.0)),
    ("Fake, score: 1", (False, 1.0)),
    ("maybe", None),
    ("", None),
    ("It is True", None),
    ("Truest", None),
    ("Fakeness score: 0.1", None),
])
def test_parse_answer(text, expected):
    assert parse_answer(text) == expected


@pytest.mark.parametrize("options, message", [
    ({"model": "m"}, "url is required"),
    ({"url": "localhost:8000/v1", "model": "m"}, "http://"),
    ({"url": "http://x/v1"}, "model is required"),
    ({"url": "http://x/v1", "model": "m", "prompt": "{caption} {bogus}"}, "placeholder"),
])
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        HttpJudge(**options)


def test_distill_run_with_the_http_judge(stub, tmp_path, capsys):
    """`moewir distill run --judge http` end to end: the model's True/Fake decide, a malformed
    answer is counted as judge-error (never a crash), and a key in the config is refused."""
    import yaml
    from moewir.cli.main import main
    from moewir.synth.build import default_photos
    from moewir.synth.tasks import synthesize
    from moewir.data.io import read_image

    photo = read_image(default_photos()[0])[::4, ::4]
    for k in range(6):
        write_image(tmp_path / "refs" / f"r{k}.png", synthesize(photo[:, ::-1], "rain", 50 + k, 0.6)[0])
    for k in range(3):
        inp, tgt = synthesize(photo, "rain", k, 0.6)[:2]
        write_image(tmp_path / "cands" / "drs" / "input" / f"{k}.png", inp)
        write_image(tmp_path / "cands" / "drs" / "target" / f"{k}.png", tgt)

    def reply(body):
        assert "daytime rain streaks" in body["messages"][0]["content"][0]["text"]
        with stub.lock:
            n = len(stub.requests)
        return chat(["True score: 0.9", "Fake", "maybe"][(n - 1) % 3])
    stub.reply = reply
    config = tmp_path / "http.yml"
    config.write_text(yaml.safe_dump({"retrieval": {"k1": 4, "k2": 3, "k3": 2}, "chunk": 8,
                                      "judge": {"name": "builtin", "http": {
                                          "url": stub.url, "model": "test-vlm", "retries": 0, "concurrency": 1}}}))
    assert main(["distill", "index", "--references", str(tmp_path / "refs"), "--db", str(tmp_path / "db"),
                 "--no-progress"]) == 0
    code = main(["distill", "run", "--candidates", str(tmp_path / "cands"), "--db", str(tmp_path / "db"),
                 "--out", str(tmp_path / "out"), "--config", str(config), "--judge", "http", "--no-progress"])
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["judge"] == "http" and len(stub.requests) == 3
    assert report["kept"] == 1 and report["by_reason"] == {"judge-fake": 1, "judge-error": 1}
    # a key in the config file is refused with a one-line error, before any request
    config.write_text(config.read_text().replace("retries: 0", "retries: 0\n    api_key: sekret"))
    capsys.readouterr()
    assert main(["distill", "run", "--candidates", str(tmp_path / "cands"), "--db", str(tmp_path / "db"),
                 "--out", str(tmp_path / "out2"), "--config", str(config), "--judge", "http", "--no-progress"]) == 2
    assert "no api_key in config files" in capsys.readouterr().err and len(stub.requests) == 3


class RawServer:
    """A loopback TCP server that answers each connection with ``respond(conn, stop)``: for
    replies an HTTP library would not send (dripping bytes, endless bodies, redirects)."""

    def __init__(self, respond):
        import socket
        self.stop = threading.Event()
        self.hits = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.thread = threading.Thread(target=self._serve, args=(respond,), daemon=True)
        self.thread.start()

    def _serve(self, respond):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(rest) < length:
                    rest += conn.recv(65536)
                try:
                    respond(conn, self.stop)
                except OSError:
                    pass  # the client hung up

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def raw_server():
    servers = []

    def start(respond):
        servers.append(RawServer(respond))
        return servers[-1]
    yield start
    for server in servers:
        server.close()


def test_redirects_are_never_followed_and_the_key_stays_home(stub, raw_server, make_query, monkeypatch):
    """A 302 to another origin (a live one that would answer True) is a judge error; that
    origin never sees a request, let alone the key."""
    monkeypatch.setenv("MOEWIR_JUDGE_API_KEY", "sekret-key-123")
    redirect = raw_server(lambda conn, stop: conn.sendall(
        f"HTTP/1.1 302 Found\r\nLocation: {stub.url}/chat/completions\r\nContent-Length: 0\r\n\r\n".encode()))
    judge = HttpJudge(url=redirect.url, model="m", retries=2, backoff=0.01)
    [verdict] = judge.judge([make_query()])
    assert verdict.reason == "judge-error" and "HTTP 302 redirect to" in verdict.detail and "not followed" in verdict.detail
    assert stub.requests == [] and redirect.hits == 1  # not retried either


def test_timeout_bounds_the_whole_request_not_each_read(raw_server, make_query):
    """A server that sends a byte every 0.3 s for 20 s held a request for its whole drip
    (each read was within the timeout); now the request ends at the timeout."""
    import time

    def drip(conn, stop):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(66):
            if stop.wait(0.3):
                return
            conn.sendall(b" ")
    server = raw_server(drip)
    judge = HttpJudge(url=server.url, model="m", retries=0, timeout=1.0)
    started = time.monotonic()
    [verdict] = judge.judge([make_query()])
    elapsed = time.monotonic() - started
    assert verdict.reason == "judge-error" and "no answer within 1 s" in verdict.detail
    assert elapsed < 8, elapsed  # the drip lasts 20 s


@pytest.mark.parametrize("declared", [True, False])
def test_huge_responses_are_refused_not_read_whole(raw_server, make_query, declared):
    def flood(conn, stop):
        head = "HTTP/1.1 200 OK\r\n" + ("Content-Length: 400000000\r\n" if declared else "Connection: close\r\n")
        conn.sendall((head + "\r\n").encode())
        chunk = b"x" * 65536
        for _ in range(200):  # 13 MB at most, the client stops long before
            if stop.is_set():
                return
            conn.sendall(chunk)
    server = raw_server(flood)
    judge = HttpJudge(url=server.url, model="m", retries=1, timeout=10, max_response_bytes=100_000)
    [verdict] = judge.judge([make_query()])
    assert verdict.reason == "judge-error" and "refused" in verdict.detail and "max_response_bytes" in verdict.detail
    assert server.hits == 1  # not retried


def test_the_api_key_is_redacted_from_everything_written(stub, make_query, monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("MOEWIR_JUDGE_API_KEY", "sekret-key-123")
    stub.script([(401, b'{"error": "bad key Bearer sekret-key-123"}', 0.0)])
    judge = judge_for(stub, retries=0)
    with caplog.at_level(logging.WARNING, logger="moewir.distill"):
        [verdict] = judge.judge([make_query()])
    assert "HTTP 401" in verdict.detail and "[redacted]" in verdict.detail
    assert "sekret-key-123" not in verdict.detail and "sekret-key-123" not in caplog.text
    stub.script([chat("Maybe sekret-key-123")])  # a malformed answer echoing it
    [verdict] = judge_for(stub, retries=0).judge([make_query(index=1)])
    assert "sekret-key-123" not in verdict.detail and "[redacted]" in verdict.detail
