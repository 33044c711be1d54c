"""The HTTP API, driven with httpx against the app in-process (shipped models), plus the `serve` command in a real
subprocess for its flags and its graceful shutdown."""
from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import asynccontextmanager

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from typer.testing import CliRunner

from nlp_rnn.cli import app as cli_app
from nlp_rnn.batching import Batcher, Busy
from nlp_rnn.server import ServerConfig, create_app, load_models
from nlp_rnn.service import Generation, Service

EN = ["Where is the train station?", "I would like a cup of coffee, please.", "The hidden state works like a memory.",
      "We are going to the beach tomorrow.", "My sister reads a long book.", "The train leaves at nine.",
      "Good morning", "The network learns from examples."]


@pytest.fixture(scope="module")
def service():
    s = Service.shipped(device="cpu")
    load_models(s, warm=False)
    return s


@pytest.fixture
def anyio_backend():
    return "asyncio"


@asynccontextmanager
async def client(service, **config):
    """An httpx client on a fresh app, with the app's startup and shutdown run around it."""
    app = create_app(service, ServerConfig(**config))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as c:
            c.app = app
            yield c


def assert_error(r: httpx.Response, status: int, *needles: str):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["status"] == status
    message = body["error"]["message"]
    assert isinstance(message, str) and message and "Traceback" not in message and "\n" not in message
    for needle in needles:
        assert needle in message, message


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


# ---------------------------------------------------------------------------------------------- every endpoint

@pytest.mark.anyio
async def test_health_and_models(service):
    async with client(service) as c:
        assert (await c.get("/health")).json() == {"status": "ok"}
        models = (await c.get("/v1/models")).json()["models"]
    by_name = {m["name"]: m for m in models}
    assert set(by_name) == {"mt-en-es", "mt-es-en", "lm-en", "lm-es"}
    assert (by_name["mt-en-es"]["src"], by_name["mt-en-es"]["tgt"]) == ("en", "es")
    assert by_name["lm-es"]["kind"] == "lm" and by_name["lm-es"]["lang"] == "es"
    assert by_name["mt-es-en"]["config"]["hidden"] > 0 and "test_bleu" in by_name["mt-es-en"]["metrics"]
    assert not any("path" in m for m in models)  # the server's file system is nobody's business


@pytest.mark.anyio
async def test_translate_one_text_with_n_best_and_attention(service):
    async with client(service) as c:
        r = await c.post("/v1/translate", json={"text": EN[0], "src": "en", "tgt": "es", "beam": 4, "n_best": 3,
                                                "attention": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model"], body["src"], body["tgt"]) == ("mt-en-es", "en", "es") and body["seconds"] >= 0
    [t] = body["translations"]
    assert t["source"] == EN[0] and t["translation"] and t["direction"] == "en-es" and not t["guessed"]
    assert len(t["n_best"]) == 3 and t["n_best"][0] == {"text": t["translation"], "score": t["score"]}
    assert [h["score"] for h in t["n_best"]] == sorted((h["score"] for h in t["n_best"]), reverse=True)
    att = t["attention"]
    assert len(att["weights"]) == len(att["target_tokens"])
    assert all(len(row) == len(att["source_tokens"]) and abs(sum(row) - 1) < 0.01 for row in att["weights"])
    expected = service.translate([EN[0]], direction="en-es", beam=4, n_best=3)[0]
    assert t["translation"] == expected.text


@pytest.mark.anyio
async def test_translate_guesses_each_texts_direction_and_takes_a_model_name(service):
    async with client(service) as c:
        texts = ["Good morning, how are you?", "Buenos días, ¿cómo estás?"]
        body = (await c.post("/v1/translate", json={"texts": texts})).json()
        named = (await c.post("/v1/translate", json={"text": "hola amigos", "model": "mt-es-en", "beam": 1})).json()
    assert [t["direction"] for t in body["translations"]] == ["en-es", "es-en"]
    assert all(t["guessed"] for t in body["translations"]) and body["model"] is None  # two models answered
    assert named["model"] == "mt-es-en" and named["translations"][0]["direction"] == "es-en"


@pytest.mark.anyio
async def test_concurrent_requests_are_batched_and_answered_as_if_alone(service):
    async with client(service) as c:
        alone = [(await c.post("/v1/translate", json={"text": s, "src": "en", "tgt": "es", "beam": 3})).json()
                 for s in EN]
        assert c.app.state.batcher.batches[-len(EN):] == [1] * len(EN)
    async with client(service, max_batch=8, batch_wait_ms=500) as c:
        together = await asyncio.gather(*(c.post("/v1/translate", json={"text": s, "src": "en", "tgt": "es",
                                                                         "beam": 3}) for s in EN))
        assert c.app.state.batcher.batches == [8]  # one model call for all eight requests
    for a, b in zip(alone, together):
        a, b = a["translations"][0], b.json()["translations"][0]
        assert b["translation"] == a["translation"] and b["score"] == pytest.approx(a["score"], abs=1e-3)


@pytest.mark.anyio
async def test_requests_with_different_options_are_batched_apart(service):
    async with client(service, max_batch=8, batch_wait_ms=1000) as c:
        replies = await asyncio.gather(
            *(c.post("/v1/translate", json={"text": s, "src": "en", "tgt": "es", "beam": 2}) for s in EN[:3]),
            *(c.post("/v1/translate", json={"text": s, "src": "en", "tgt": "es", "beam": 1}) for s in EN[3:5]))
        assert sorted(c.app.state.batcher.batches) == [2, 3]
    assert all(r.status_code == 200 for r in replies)


@pytest.mark.anyio
async def test_generate_plain_and_streamed_give_the_same_text_for_a_seed(service):
    ask = {"prompt": "The station ", "length": 80, "temperature": 0.9, "top_k": 20, "seed": 7}
    async with client(service) as c:
        plain = (await c.post("/v1/generate", json=ask)).json()
        again = (await c.post("/v1/generate", json=ask)).json()
        r = await c.post("/v1/generate", json={**ask, "stream": True})
    assert plain["chars"] == 80 == len(plain["text"]) and plain["lang"] == "en"
    assert plain == {**again, "seconds": plain["seconds"]}
    assert r.headers["content-type"].startswith("text/event-stream") and r.headers["cache-control"] == "no-cache"
    events = sse_events(r.text)
    assert events[0] == ("start", {"lang": "en", "unknown_chars": []})
    assert events[-1][0] == "done" and events[-1][1]["chars"] == 80
    assert "".join(d["text"] for e, d in events if e == "message") == plain["text"]


@pytest.mark.anyio
async def test_a_client_that_leaves_stops_the_generation(service, monkeypatch):
    produced = []

    def endless():
        while True:
            time.sleep(0.002)
            produced.append(1)
            yield "a"

    monkeypatch.setattr(service, "generate", lambda *a, **k: Generation("en", [], endless()))
    app = create_app(service, ServerConfig(max_streams=1))
    body = json.dumps({"prompt": "x", "stream": True}).encode()
    first_chunk, asked = asyncio.Event(), []

    async def receive():
        if not asked:
            asked.append(1)
            return {"type": "http.request", "body": body, "more_body": False}
        await first_chunk.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.body" and b'"text"' in message.get("body", b""):
            first_chunk.set()

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/generate", "raw_path": b"/v1/generate",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000), "server": ("test", 80),
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app(scope, receive, send), 10)
        await asyncio.sleep(0.3)
        stopped_at = len(produced)
        await asyncio.sleep(0.3)
        assert len(produced) == stopped_at < 1000
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as c:
            monkeypatch.setattr(service, "generate", lambda *a, **k: Generation("en", [], iter("ok")))
            r = await c.post("/v1/generate", json={"prompt": "x"})  # the one stream place was given back
    assert r.status_code == 200 and r.json()["text"] == "ok"


@pytest.mark.anyio
async def test_complete(service):
    async with client(service) as c:
        body = (await c.post("/v1/complete", json={"text": "The network learns from exam", "k": 2})).json()
        es = (await c.post("/v1/complete", json={"text": "Mañana por la mañ", "lang": "es"})).json()
    assert body["lang"] == "en" and 1 <= len(body["completions"]) <= 2 and body["seconds"] >= 0
    assert all(c["text"].startswith("exam") and 0 < c["prob"] <= 1 for c in body["completions"])
    assert isinstance(body["next_words"], list)
    assert es["lang"] == "es" and es["completions"][0]["text"].startswith("mañ")


@pytest.mark.anyio
async def test_classify_without_a_classifier_is_404(service):
    async with client(service) as c:
        assert_error(await c.post("/v1/classify", json={"text": "great film"}), 404, "no classifier is loaded")


@pytest.mark.anyio
async def test_opennmt_compatible_endpoint(service):
    async with client(service) as c:
        onmt = (await c.post("/translator/translate", json=[{"src": EN[0], "id": 0}, {"src": EN[1], "id": 0}])).json()
        by_name = (await c.post("/translator/translate", json=[{"src": "hola", "id": "mt-es-en"}])).json()
        ours = (await c.post("/v1/translate", json={"texts": EN[:2], "model": "mt-en-es", "beam": 5})).json()
        assert_error(await c.post("/translator/translate", json=[{"src": "x", "id": 100}]), 404, "0 (mt-en-es)")
    assert len(onmt) == 1 and [h["src"] for h in onmt[0]] == EN[:2]
    assert [h["tgt"] for h in onmt[0]] == [t["translation"] for t in ours["translations"]]
    assert all(h["n_best"] == 1 and isinstance(h["pred_score"], float) for h in onmt[0])
    assert by_name[0][0]["src"] == "hola" and by_name[0][0]["tgt"]


@pytest.mark.anyio
async def test_the_page_and_its_files(service):
    async with client(service) as c:
        page, js, css = await c.get("/"), await c.get("/app.js"), await c.get("/style.css")
        docs, spec = await c.get("/docs"), (await c.get("/openapi.json")).json()
    assert page.headers["content-type"].startswith("text/html") and 'src="app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert js.headers["content-type"].startswith("text/javascript")
    assert css.headers["content-type"].startswith("text/css")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    assert {"/health", "/v1/models", "/v1/translate", "/v1/generate", "/v1/complete", "/v1/classify",
            "/translator/translate"} <= set(spec["paths"])
    beam = spec["components"]["schemas"]["TranslateRequest"]["properties"]["beam"]
    assert (beam["minimum"], beam["maximum"]) == (1, ServerConfig.max_beam)
    assert "408" in spec["info"]["description"] and "503" in spec["info"]["description"]


# ---------------------------------------------------------------------------------------------- bad input

BAD = [
    ("/v1/translate", b'{"text": "hi"', 400, "not valid JSON"),
    ("/v1/translate", b'["hi"]', 400, "JSON object"),
    ("/v1/translate", b'', 400, "body is empty"),
    ("/v1/translate", {"text": 5}, 422, "text should be a valid string"),
    ("/v1/translate", {"texts": "hi"}, 422, "texts should be a valid list"),
    ("/v1/translate", {"text": "hi", "beam": "5"}, 422, "beam should be a valid integer"),
    ("/v1/translate", {"text": "hi", "attention": "yes"}, 422, "attention should be a valid boolean"),
    ("/v1/translate", {"text": ""}, 422, "text must not be empty"),
    ("/v1/translate", {"texts": ["ok", "  "]}, 422, "texts[1] must not be empty"),
    ("/v1/translate", {"texts": []}, 422, "texts should have at least 1 item"),
    ("/v1/translate", {}, 422, 'give either "text" or "texts"'),
    ("/v1/translate", {"text": "a", "texts": ["b"]}, 422, 'give either "text" or "texts"'),
    ("/v1/translate", {"text": "x" * 1001}, 422, "at most 1000 characters"),
    ("/v1/translate", {"texts": ["ok", "x" * 1001]}, 422, "texts[1] has 1,001 characters"),
    ("/v1/translate", {"texts": ["a"] * 65}, 422, "at most 64 items"),
    ("/v1/translate", {"text": "hi", "beam": 0}, 422, "beam should be greater than or equal to 1"),
    ("/v1/translate", {"text": "hi", "beam": 17}, 422, "beam should be less than or equal to 16"),
    ("/v1/translate", {"text": "hi", "n_best": 0}, 422, "n_best should be greater than or equal to 1"),
    ("/v1/translate", {"text": "hi", "beam": 2, "n_best": 3}, 422, "n_best (3) cannot be larger than beam (2)"),
    ("/v1/translate", {"text": "hi", "src": "fr", "tgt": "de"}, 404, "no translator for fr-de"),
    ("/v1/translate", {"text": "hi", "src": "fr"}, 422, "give both src and tgt"),
    ("/v1/translate", {"text": "hi", "model": "mt-fr-de"}, 404, "no translator named 'mt-fr-de'"),
    ("/v1/translate", {"text": "hi", "model": "mt-en-es", "src": "en"}, 422, "not both"),
    ("/v1/translate", {"text": "hi", "bean": 5}, 422, "unknown field 'bean'"),
    ("/v1/translate", b'{"text": "\\ud800"}', 422, "not valid Unicode"),
    ("/v1/generate", {"prompt": "a", "length": 2001}, 422, "length should be less than or equal to 2000"),
    ("/v1/generate", {"prompt": "a", "temperature": 0}, 422, "temperature should be greater than 0"),
    ("/v1/generate", {"prompt": "a", "top_p": 1.5}, 422, "top_p should be less than or equal to 1"),
    ("/v1/generate", {"prompt": "a", "seed": -1}, 422, "seed should be greater than or equal to 0"),
    ("/v1/generate", {"prompt": "a", "lang": "fr"}, 404, "no language model for 'fr'"),
    ("/v1/generate", {"prompt": "a", "stream": "yes"}, 422, "stream should be a valid boolean"),
    ("/v1/complete", {"lang": "en"}, 422, "text is required"),
    ("/v1/complete", {"text": "a", "k": 0}, 422, "k should be greater than or equal to 1"),
    ("/v1/complete", {"text": "a", "lang": "xx"}, 404, "no language model for 'xx'"),
    ("/translator/translate", {"src": "hi"}, 400, "JSON list"),
    ("/translator/translate", [], 422, "send from 1 to 64 items"),
    ("/translator/translate", [{"id": 0}], 422, "[0].src is required"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("path,body,status,needle", BAD, ids=[f"{p}-{n[:28]}" for p, _, _, n in BAD])
async def test_bad_input_is_one_clear_4xx(service, path, body, status, needle):
    async with client(service) as c:
        if isinstance(body, bytes):
            r = await c.post(path, content=body, headers={"content-type": "application/json"})
        else:
            r = await c.post(path, json=body)
    assert_error(r, status, needle)


@pytest.mark.anyio
async def test_wrong_route_method_and_content_type(service):
    async with client(service) as c:
        assert_error(await c.get("/v2/translate"), 404, "no such endpoint: GET /v2/translate")
        assert_error(await c.get("/v1/translate"), 405, "GET is not allowed")
        assert_error(await c.post("/v1/translate", content=b"text=hi",
                                  headers={"content-type": "application/x-www-form-urlencoded"}), 415, "as JSON")
        r = await c.post("/v1/translate", content=json.dumps({"text": "hola", "beam": 1}).encode())  # no type: JSON
        assert r.status_code == 200


@pytest.mark.anyio
async def test_a_huge_body_is_refused_before_it_is_read(service):
    async def chunks():
        for _ in range(100):
            yield b"x" * 20_000

    async with client(service, max_body=50_000) as c:
        declared = await c.post("/v1/translate", content=b"{" + b" " * 60_000 + b"}")
        chunked = await c.post("/v1/translate", content=chunks())  # no Content-Length: counted as it comes
    assert_error(declared, 413, "50,000 bytes")
    assert_error(chunked, 413, "50,000 bytes")


def test_no_body_shape_makes_a_500(service):
    """Arbitrary JSON in every field: always a 2xx or one 4xx error, never a server error."""
    values = st.recursive(st.none() | st.booleans() | st.integers(-10, 10 ** 12) | st.floats() | st.text(max_size=5),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                     max_size=3), max_leaves=6)
    fields = ["text", "texts", "src", "tgt", "model", "beam", "n_best", "attention", "prompt", "lang", "length",
              "temperature", "top_k", "top_p", "seed", "k", "top"]
    app = create_app(service, ServerConfig(max_texts=2, max_chars=20, max_length=20, max_beam=2))
    with TestClient(app, raise_server_exceptions=False) as tc:
        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
        @given(path=st.sampled_from(["/v1/translate", "/v1/generate", "/v1/complete", "/translator/translate"]),
               body=st.dictionaries(st.sampled_from(fields), values, max_size=4) | values)
        def check(path, body):
            r = tc.post(path, content=json.dumps(body, allow_nan=True))
            assert r.status_code < 500, (path, body, r.text)
            if r.status_code >= 400:
                assert set(r.json()) == {"error"}

        check()


# ---------------------------------------------------------------------------------------------- time, queue, auth

@pytest.mark.anyio
async def test_a_request_past_its_time_limit_gets_408(service, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(service, "translate", lambda lines, **kw: release.wait(20) and [])
    monkeypatch.setattr(service, "generate", lambda *a, **k: Generation("en", [], (time.sleep(0.01) or "a"
                                                                                 for _ in range(10 ** 6))))
    async with client(service, timeout=0.2) as c:
        start = time.perf_counter()
        translate = await c.post("/v1/translate", json={"text": "hi", "src": "en", "tgt": "es"})
        took = time.perf_counter() - start
        release.set()
        generate = await c.post("/v1/generate", json={"prompt": "x", "length": 2000})
        streamed = await c.post("/v1/generate", json={"prompt": "x", "length": 2000, "stream": True})
    assert took < 5  # the limit, not the 20 s the model would have taken
    assert_error(translate, 408, "time limit of 0.2 s")
    assert_error(generate, 408, "time limit of 0.2 s")
    events = sse_events(streamed.text)  # the stream had begun: its end says why
    assert events[-1][0] == "error" and "time limit" in events[-1][1]["message"]


@pytest.mark.anyio
async def test_a_full_queue_answers_503_at_once(service, monkeypatch):
    real, started, release = service.translate, threading.Event(), threading.Event()

    def slow(lines, **kw):
        started.set()
        release.wait(10)
        return real(lines, **kw)

    monkeypatch.setattr(service, "translate", slow)
    async with client(service, max_queue=2, max_texts=2, batch_wait_ms=0) as c:
        def ask(*texts):
            return c.post("/v1/translate", json={"texts": list(texts), "src": "en", "tgt": "es"})
        running = asyncio.create_task(ask("one"))
        await asyncio.to_thread(started.wait, 5)
        waiting = asyncio.create_task(ask("two", "three"))  # fills the queue
        while c.app.state.batcher.queued < 2:
            await asyncio.sleep(0.005)
        start = time.perf_counter()
        refused = await ask("four")
        took = time.perf_counter() - start
        release.set()
        done = await asyncio.gather(running, waiting)
    assert_error(refused, 503, "busy")
    assert int(refused.headers["retry-after"]) >= 1 and took < 2  # not after the 10 s the queue would take
    assert [len(r.json()["translations"]) for r in done] == [1, 2]


@pytest.mark.anyio
async def test_a_request_that_would_time_out_in_the_queue_is_refused_at_once():
    gate = threading.Event()

    def run(key, items):  # 50 ms a sentence, once the gate opens
        gate.wait(5)
        time.sleep(0.05 * len(items))
        return [x.upper() for x in items]

    batcher = Batcher(run, max_batch=4, max_wait=0, max_queue=100)
    gate.set()
    assert await batcher.submit("k", ["a", "b"], timeout=60) == ["A", "B"]  # teaches it ~20 sentences/s
    gate.clear()
    first = asyncio.create_task(batcher.submit("k", ["c"], timeout=60))  # holds the worker at the gate
    await asyncio.sleep(0.05)
    queued = [asyncio.create_task(batcher.submit("k", list("defghijk"), timeout=60))]  # ~0.4 s of work waits
    await asyncio.sleep(0.01)
    with pytest.raises(Busy) as refused:
        await batcher.submit("k", ["l"], timeout=0.3)
    assert refused.value.retry_after >= 1
    gate.set()
    assert await first == ["C"] and (await queued[0]) == list("DEFGHIJK")
    await batcher.stop()


@pytest.mark.anyio
async def test_api_key(service):
    async with client(service, api_key="s3cret") as c:
        assert (await c.get("/health")).status_code == 200
        assert (await c.get("/")).status_code == 200  # the page asks for the key itself
        missing = await c.get("/v1/models")
        wrong = await c.post("/v1/translate", json={"text": "hi"}, headers={"Authorization": "Bearer nope"})
        onmt = await c.post("/translator/translate", json=[{"src": "hi"}])
        right = await c.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
        lower = await c.get("/v1/models", headers={"Authorization": "bearer s3cret"})
    assert_error(missing, 401, "needs an API key")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert_error(wrong, 401, "wrong")
    assert_error(onmt, 401)
    assert right.status_code == 200 and lower.status_code == 200


@pytest.mark.anyio
async def test_cors_is_off_unless_asked(service):
    preflight = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    async with client(service) as c:
        off = await c.options("/v1/translate", headers=preflight)
        simple = await c.get("/v1/models", headers={"Origin": "http://app.example"})
    async with client(service, cors_origins=("http://app.example",), api_key="k") as c:
        on = await c.options("/v1/translate", headers=preflight)
        other = await c.options("/v1/translate", headers={**preflight, "Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in off.headers and "access-control-allow-origin" not in simple.headers
    assert on.status_code == 200 and on.headers["access-control-allow-origin"] == "http://app.example"
    assert "access-control-allow-origin" not in other.headers


# ---------------------------------------------------------------------------------------------- the command

runner = CliRunner()


@pytest.mark.parametrize("argv,code,needle", [
    (["--max-batch", "0"], 2, "--max-batch must be a whole number from 1"),
    (["--timeout", "0"], 2, "--timeout must be"),
    (["--max-texts", "100", "--max-queue", "10"], 2, "cannot exceed --max-queue"),
    (["--port", "70000"], 2, "--port must be"),
    (["-m", "no/such/model"], 1, "no/such/model"),
])
def test_serve_flags_are_checked_before_anything_starts(argv, code, needle):
    result = runner.invoke(cli_app, ["serve", "--port", "0", *argv])
    assert result.exit_code == code and "Traceback" not in result.stderr
    assert needle in result.stderr and result.stdout == ""


def test_serve_refuses_a_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = runner.invoke(cli_app, ["serve", "--port", str(taken.getsockname()[1])])
    assert result.exit_code == 2 and "cannot listen on 127.0.0.1 port" in result.stderr


def test_serve_models_given_by_path(tmp_path):
    """`-m` in any order and kind: each checkpoint says what it is; a given LM serves every language."""
    from helpers import train_tiny_lm

    from nlp_rnn.cli.serve_cmd import _service
    from nlp_rnn.defaults import shipped_model
    from nlp_rnn.errors import UsageError

    train_tiny_lm(tmp_path / "lm", steps=5)
    service = _service([tmp_path / "lm", shipped_model("mt-es-en")], "cpu", "none")
    load_models(service)
    with TestClient(create_app(service)) as tc:
        models = tc.get("/v1/models").json()["models"]
        guessed = tc.post("/v1/translate", json={"text": "el gato duerme", "beam": 2})
        named = tc.post("/v1/translate", json={"text": "el perro corre", "model": "es-en"})
        generated = tc.post("/v1/generate", json={"prompt": "the ", "length": 20, "seed": 1})
        completed = tc.post("/v1/complete", json={"text": "the qu"})
    assert sorted((m["kind"], m["name"], m["origin"]) for m in models) == [("lm", "given", "given"),
                                                                           ("mt", "es-en", "given")]
    assert guessed.status_code == named.status_code == 200 and named.json()["translations"][0]["direction"] == "es-en"
    assert generated.status_code == completed.status_code == 200
    assert generated.json()["chars"] == len(generated.json()["text"]) <= 20  # an untrained LM may sample <unk>
    with pytest.raises(UsageError, match="at most one language model"):
        _service([tmp_path / "lm", tmp_path / "lm"], "cpu", "none")


def start_server(*args: str) -> tuple[subprocess.Popen, str, list[str]]:
    """`nlp-rnn serve` on a free loopback port: (process, base URL, its stderr lines so far and to come)."""
    proc = subprocess.Popen([sys.executable, "-m", "nlp_rnn", "serve", "--port", "0", "--threads", "1", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    found = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if "serving on" in line:
                found.set()
    threading.Thread(target=read, daemon=True).start()
    if not found.wait(120):
        proc.kill()
        raise AssertionError("the server did not start:\n" + "".join(lines))
    url = re.search(r"http://\S+/", next(l for l in lines if "serving on" in l)).group(0)
    deadline = time.monotonic() + 30
    while True:  # "serving on" comes just before uvicorn takes connections
        try:
            httpx.get(url + "health", timeout=1)
            return proc, url, lines
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            time.sleep(0.05)


def test_sigterm_lets_the_request_in_flight_finish():
    proc, url, lines = start_server("--no-access-log")
    try:
        with httpx.stream("POST", url + "v1/generate", json={"prompt": "The ", "length": 1500, "seed": 3,
                                                             "stream": True}, timeout=60) as r:
            stream = r.iter_lines()
            assert next(stream).startswith("event: start")
            proc.send_signal(signal.SIGTERM)
            rest = "\n".join(stream)
        assert "event: done" in rest and '"chars": 1500' in rest
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert "Traceback" not in "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
