"""The HTTP face of nlp-rnn: a FastAPI app over one `Service` — a JSON API, Server-Sent Events, the playground.

    app = create_app(Service.shipped(), ServerConfig(max_batch=32))   # `nlp-rnn serve` runs it with uvicorn

Requests are parsed and range-checked here (ranges from `limits`, caps from `ServerConfig`), then answered by the
service off the event loop: translations through the dynamic batcher, completions on a thread of their own so
typing never waits behind a batch, generations on a few stream threads. Every error is one JSON object,
{"error": {"message", "status"}}, with a 4xx status; no request can name a file.
"""
# No `from __future__ import annotations`: FastAPI reads the annotations of the endpoints at run time, and the
# request models they name are classes local to `create_app`.

import asyncio
import hmac
import json
import math
import re
import threading
import time
import weakref
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Optional, Union

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .batching import Batcher, Busy, Lane, ServerConfig, TimedOut
from .errors import NlpRnnError
from .jsonsafe import finite
from .limits import LIMITS
from .service import Service

WEB = Path(__file__).parent / "web"
NAME = 100  # characters in a language code or model name
PAGE_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"}


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------- request bodies

def _limit(name: str, default, hi=None, description: str = ""):
    """A pydantic field with the range LIMITS[name] (upper bound lowered to `hi`), for validation and the docs."""
    r = LIMITS[name]
    low = {"gt": r.lo} if r.lo_open else {"ge": r.lo}
    return Field(default, **low, le=min(r.hi, hi) if hi is not None else r.hi, description=description)


def _schemas(cfg: ServerConfig):
    """The request bodies, with this server's caps in their validation and in the OpenAPI page."""
    Text = Field(min_length=1, max_length=cfg.max_chars)
    strict = ConfigDict(strict=True, extra="forbid")

    def clean(text: str) -> str:
        if not text.strip():
            raise ValueError("must not be empty")
        _no_surrogates(text)
        return text

    class Texts(BaseModel):
        model_config = strict
        text: Optional[str] = Field(None, max_length=cfg.max_chars, description="One text (or give `texts`).")
        texts: Optional[list[str]] = Field(None, min_length=1, max_length=cfg.max_texts,
                                           description=f"Up to {cfg.max_texts} texts, answered in order.")

        @field_validator("text")
        @classmethod
        def check_text(cls, v):
            return None if v is None else clean(v)

        @field_validator("texts")
        @classmethod
        def check_texts(cls, v):
            for i, t in enumerate(v or ()):
                if len(t) > cfg.max_chars:
                    raise ValueError(f"texts[{i}] has {len(t):,} characters; the limit is {cfg.max_chars:,}")
                try:
                    clean(t)
                except ValueError as e:
                    raise ValueError(f"texts[{i}] {e}") from None
            return v

        @model_validator(mode="after")
        def check_one(self):
            if (self.text is None) == (self.texts is None):
                raise ValueError("give either \"text\" or \"texts\"")
            return self

        def all(self) -> list[str]:
            return [self.text] if self.text is not None else list(self.texts)

    class TranslateRequest(Texts):
        src: Optional[str] = Field(None, max_length=NAME, description="Source language, e.g. en (omit src and tgt: "
                                                                      "guessed per text).")
        tgt: Optional[str] = Field(None, max_length=NAME, description="Target language, e.g. es.")
        model: Optional[str] = Field(None, max_length=NAME, description="A translator by name (see /v1/models), "
                                                                         "instead of src/tgt.")
        beam: int = _limit("beam", 5, cfg.max_beam, "Beam size (1: greedy search).")
        n_best: int = _limit("n_best", 1, cfg.max_beam, "Hypotheses returned per text, best first (at most beam).")
        attention: bool = Field(False, description="Return the attention matrix of each translation.")

        @model_validator(mode="after")
        def check_n_best(self):
            if self.n_best > self.beam:
                raise ValueError(f"n_best ({self.n_best}) cannot be larger than beam ({self.beam})")
            return self

    class GenerateRequest(BaseModel):
        model_config = strict
        prompt: str = Field("", max_length=cfg.max_chars, description="Text to continue.")
        lang: Optional[str] = Field(None, max_length=NAME, description="Language of the model to use (null: guessed "
                                                                       "from the prompt).")
        length: int = _limit("length", 300, cfg.max_length, "Characters to generate.")
        temperature: float = _limit("temperature", 0.8, None, "Below 1: safer text; above 1: more surprising.")
        top_k: Optional[int] = _limit("top_k", None, None, "Sample among the k most likely characters.")
        top_p: Optional[float] = _limit("top_p", None, None, "Sample among the most likely characters holding p.")
        seed: Optional[int] = _limit("seed", None, None, "Same seed, same text.")
        stream: bool = Field(False, description="Stream characters as Server-Sent Events.")

        @field_validator("prompt")
        @classmethod
        def check_prompt(cls, v):
            return _no_surrogates(v)

    class CompleteRequest(BaseModel):
        model_config = strict
        text: str = Field(max_length=cfg.max_chars, description="What has been typed so far.")
        lang: Optional[str] = Field(None, max_length=NAME, description="Language of the model to use (null: guessed).")
        k: int = _limit("k", 3, None, "Suggestions of each kind.")

        @field_validator("text")
        @classmethod
        def check_text(cls, v):
            return _no_surrogates(v)

    class ClassifyRequest(Texts):
        top: int = _limit("top", 3, None, "Labels returned per text, most likely first.")
        model: Optional[str] = Field(None, max_length=NAME, description="A classifier by name (default: the one "
                                                                         "for each text's language).")

    class OnmtItem(BaseModel):
        model_config = ConfigDict(strict=True, extra="ignore")
        src: str = Text
        id: Union[int, str, None] = Field(None, description="Translator: a name, or its position among the "
                                                            "translators of /v1/models (absent: guessed).")

        @field_validator("src")
        @classmethod
        def check_src(cls, v):
            return clean(v)

    return TranslateRequest, GenerateRequest, CompleteRequest, ClassifyRequest, OnmtItem


def _no_surrogates(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains an unpaired surrogate (not valid Unicode)") from None
    return text


# ---------------------------------------------------------------------------------------------- the app

def load_models(service: Service, warm: bool = True) -> None:
    """Load every model now, so a bad checkpoint fails at start and no request pays for loading; `warm` also runs
    each once (the first call of a model is several times slower than the next)."""
    service.load_all()
    if warm:
        for key in service.translators:
            service.translate(["a"], direction=key, beam=1)
        for key in service.lms:
            service.complete("a", lang=None if service.user_lm else key)


def create_app(service: Service, cfg: ServerConfig | None = None) -> FastAPI:
    """The ASGI app over `service` (its models already chosen; load them first with `load_models`)."""
    cfg = (cfg or ServerConfig()).check()
    TranslateRequest, GenerateRequest, CompleteRequest, ClassifyRequest, OnmtItem = _schemas(cfg)
    catalog = _catalog(service)
    names = {e["name"]: e["key"] for e in catalog} | {e["key"]: e["key"] for e in catalog if e["kind"] == "mt"}
    mt_order = [e for e in catalog if e["kind"] == "mt"]
    batcher = Batcher(lambda key, texts: service.translate(texts, direction=key[0], beam=key[1], n_best=key[2],
                                                           attention=key[3], batch_size=cfg.max_batch),
                      cfg.max_batch, cfg.batch_wait_ms / 1000, cfg.max_queue)
    completer = Lane("complete", 1, cfg.max_queue)
    classifier = Lane("classify", 1, cfg.max_queue)
    generator = Lane("generate", cfg.max_streams, cfg.max_streams)

    @asynccontextmanager
    async def lifespan(app):
        yield
        await batcher.stop()
        for lane in (completer, classifier, generator):
            lane.close()

    app = FastAPI(title="nlp-rnn", version=__version__, description=_DESCRIPTION.format(cfg=cfg), lifespan=lifespan,
                  redoc_url=None, strict_content_type=False)
    app.state.batcher, app.state.config = batcher, cfg
    _errors(app)
    app.add_middleware(Guard, api_key=cfg.api_key, max_body=cfg.max_body)
    if cfg.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], expose_headers=["Retry-After"], max_age=600)
    api = [Depends(HTTPBearer(auto_error=False, description="--api-key"))] if cfg.api_key else []

    def lang_of(lang: str | None) -> str | None:
        if lang is not None and not service.has_lm(lang):
            have = ", ".join(e["lang"] for e in catalog if e["kind"] == "lm" and e["lang"]) or "none"
            raise ApiError(404, f"no language model for {lang!r}; available: {have}")
        return lang

    def direction_of(model: str | int | None, src: str | None, tgt: str | None) -> str | None:
        if model is not None:
            if src or tgt:
                raise ApiError(422, "give \"model\" or \"src\"/\"tgt\", not both")
            if isinstance(model, int) and 0 <= model < len(mt_order):
                return mt_order[model]["key"]
            if model in names and any(e["key"] == names[model] for e in mt_order):
                return names[model]
            listed = ", ".join(f"{i} ({e['name']})" for i, e in enumerate(mt_order)) or "none"
            shown = model if len(str(model)) <= NAME else str(model)[:NAME] + "…"
            raise ApiError(404, f"no translator named {shown!r}; available: {listed}")
        if not service.translators:
            raise ApiError(404, "no translator is loaded")
        if not (src or tgt):
            return None
        direction, _ = service.direction_for("", src, tgt)
        if direction not in service.translators:
            raise ApiError(404, service.no_translator(direction))
        return direction

    def model_name(direction: str) -> str | None:
        return next((e["name"] for e in catalog if e["kind"] == "mt" and e["key"] == direction), None)

    # ------------------------------------------------------------------------------------------ endpoints
    @app.get("/health", tags=["server"], summary="Liveness (never needs a key)")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models", tags=["models"], dependencies=api, summary="The models this server runs")
    async def models():
        return {"models": [{k: v for k, v in e.items() if k != "key"} for e in catalog]}

    @app.post("/v1/translate", tags=["translate"], dependencies=api, summary="Translate one text or several")
    async def translate(req: TranslateRequest):
        start = time.perf_counter()
        direction = direction_of(req.model, req.src, req.tgt)
        done = await batcher.submit((direction, req.beam, req.n_best, req.attention), req.all(), cfg.timeout)
        dirs = {r.direction for r in done}
        one = dirs.pop() if len(dirs) == 1 else None
        src, tgt = next(((e["src"], e["tgt"]) for e in mt_order if e["key"] == one), (None, None))
        return reply({"translations": [_translation(r) for r in done], "model": model_name(one) if one else None,
                      "src": src, "tgt": tgt, "seconds": round(time.perf_counter() - start, 4)})

    @app.post("/v1/generate", tags=["generate"], dependencies=api, summary="Continue a prompt (optionally streamed)")
    async def generate(req: GenerateRequest):
        lang = lang_of(req.lang)
        generator.take()
        release = _once(generator.give)
        try:
            gen = await generator.call(lambda: service.generate(req.prompt, lang, req.length, req.temperature,
                                                                req.top_k, req.top_p, req.seed))
        except BaseException:
            release()
            raise
        stop, start = threading.Event(), time.perf_counter()
        if not req.stream:
            try:
                text, _ = await asyncio.wait_for(generator.call(_pull, gen.pieces, stop, math.inf, None), cfg.timeout)
            except asyncio.TimeoutError:
                raise TimedOut() from None
            finally:
                stop.set()
                release()
            return reply({"text": text, "chars": len(text), "seconds": round(time.perf_counter() - start, 4),
                          "lang": gen.lang, "unknown_chars": gen.unknown_chars})

        async def events():
            chars = 0
            try:
                yield _sse({"lang": gen.lang, "unknown_chars": gen.unknown_chars}, "start")
                while True:
                    if time.perf_counter() - start > cfg.timeout:
                        yield _sse({"message": f"the generation ran past the time limit of {cfg.timeout:g} s"},
                                   "error")
                        return
                    text, finished = await generator.call(_pull, gen.pieces, stop, 0.02, 64)
                    if text:
                        chars += len(text)
                        yield _sse({"text": text})
                    if finished:
                        break
                yield _sse({"chars": chars, "seconds": round(time.perf_counter() - start, 4), "lang": gen.lang},
                           "done")
            except NlpRnnError as e:
                yield _sse({"message": _api_words(str(e))}, "error")
            finally:
                stop.set()  # a client that went away stops the generation at the next character
                release()

        stream = events()
        weakref.finalize(stream, release)  # a stream never started still gives its place back
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/v1/complete", tags=["complete"], dependencies=api, summary="Suggestions while typing")
    async def complete(req: CompleteRequest):
        lang = lang_of(req.lang)
        return reply(await completer.run(service.complete, req.text, lang, req.k, timeout=cfg.timeout))

    @app.post("/v1/classify", tags=["classify"], dependencies=api, summary="Label texts with the classifier")
    async def classify(req: ClassifyRequest):
        if not service.classifiers:
            raise ApiError(404, "no classifier is loaded")
        if req.model is not None and req.model not in service.classifiers:
            raise ApiError(404, f"no classifier named {req.model!r}; available: {', '.join(service.classifiers)}")
        results = await classifier.run(service.classify, req.all(), req.top, req.model, timeout=cfg.timeout)
        if req.text is not None:
            return reply(results[0])
        models = {r.get("model") for r in results}
        return reply({"results": results, "model": models.pop() if len(models) == 1 else None})

    @app.post("/translator/translate", tags=["OpenNMT-py compatible"], dependencies=api,
              summary="The request and answer of OpenNMT-py's server")
    async def onmt_translate(items: list[OnmtItem]):
        if not items or len(items) > cfg.max_texts:
            raise ApiError(422, f"send from 1 to {cfg.max_texts} items, not {len(items)}")
        direction = direction_of(items[0].id, None, None)
        done = await batcher.submit((direction, 5, 1, False), [it.src for it in items], cfg.timeout)
        return reply([[{"src": it.src, "tgt": r.text, "n_best": 1, "pred_score": round(r.score, 4)}
                       for it, r in zip(items, done)]])

    # ------------------------------------------------------------------------------------------ the page
    pages = {name: (WEB / name, media) for name, media in (("index.html", "text/html"),
                                                           ("app.js", "text/javascript"), ("style.css", "text/css"))}
    files = {name: (path.read_bytes(), media) for name, (path, media) in pages.items() if path.is_file()}

    def page(name: str) -> Response:
        if name not in files:
            raise ApiError(404, "the playground page is not installed with this copy of nlp-rnn")
        body, media = files[name]
        return Response(body, media_type=f"{media}; charset=utf-8", headers=PAGE_HEADERS)

    def endpoint(name: str):
        async def serve_file():
            return page(name)
        return serve_file

    for route, name in (("/", "index.html"), ("/app.js", "app.js"), ("/style.css", "style.css")):
        app.get(route, include_in_schema=False)(endpoint(name))
    return app


_DESCRIPTION = """\
Translation, generation, autocomplete and classification with recurrent networks. The playground page is at `/`.

**Errors** are `{{"error": {{"message": "...", "status": N}}}}` with a 4xx status: 400 unreadable body, 401 missing
or wrong key, 404 unknown model or language, 408 the request ran past its time limit ({cfg.timeout:g} s),
413 body over {cfg.max_body:,} bytes, 415 body not JSON, 422 a value out of range, 503 queue full (with
`Retry-After`).

**Limits of this server**: {cfg.max_chars:,} characters per text, {cfg.max_texts} texts per request, beam up to
{cfg.max_beam}, {cfg.max_length:,} generated characters, {cfg.max_queue} sentences waiting, {cfg.max_streams}
generations at once. Translations are batched (up to {cfg.max_batch} sentences, waiting up to
{cfg.batch_wait_ms:g} ms for company).

**Auth**: when the server runs with `--api-key`, every `/v1/` and `/translator/` endpoint needs
`Authorization: Bearer KEY`; `/health`, the page and this description do not.
"""


def _catalog(service: Service) -> list[dict]:
    """/v1/models, computed once: the service's description without file paths, plus the key each model answers to."""
    keys = [k for table in (service.translators, service.lms, service.classifiers) for k in table]
    out = []
    for key, entry in zip(keys, service.describe()):
        entry = {k: v for k, v in entry.items() if k not in ("path", "loaded")}
        if entry["kind"] == "lm" and entry.get("lang") is None:
            entry["lang"] = _lm_lang(service, key)
        out.append({**entry, "key": key})
    return out


def _lm_lang(service: Service, key: str) -> str | None:
    """The language a given LM's checkpoint says it reads (the service files given LMs under one key)."""
    from .checkpoint import read_config

    meta = read_config(service.lms[key].path).get("meta") or {}
    lang = meta.get("lang")
    return lang if isinstance(lang, str) and lang else None


def _translation(r) -> dict:
    out = {"source": r.source, "translation": r.text, "score": round(r.score, 4), "direction": r.direction,
           "guessed": r.guessed, "truncated": r.truncated,
           "n_best": [{"text": t, "score": round(s, 4)} for t, s in r.alternatives]}
    if r.attention is not None:
        out["attention"] = r.attention
    return out


def _pull(pieces, stop: threading.Event, budget: float, most: int | None) -> tuple[str, bool]:
    """Characters from a generation for up to `budget` seconds or `most` characters: (text, finished)."""
    out, start = [], time.perf_counter()
    for piece in pieces:
        out.append(piece)
        if stop.is_set() or (most is not None and len(out) >= most) or time.perf_counter() - start > budget:
            return "".join(out), stop.is_set()
    return "".join(out), True


def _once(fn):
    done = []

    def call():
        if not done:
            done.append(True)
            fn()
    return call


def _sse(data: dict, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(finite(data), ensure_ascii=False)}\n\n"


def reply(content, status: int = 200, headers: dict | None = None) -> Response:
    """JSON as it is (UTF-8, not escaped); a non-finite score becomes null, so the answer is always valid JSON."""
    body = json.dumps(finite(content), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body.encode("utf-8", "replace"), status, headers, media_type="application/json")


def error(status: int, message: str, headers: dict | None = None) -> Response:
    return reply({"error": {"message": message, "status": status}}, status, headers)


def _api_words(message: str) -> str:
    """The service words its errors for the CLI (`--n-best`); an HTTP client sets fields (`n_best`)."""
    return re.sub(r"--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_"), message)


# ---------------------------------------------------------------------------------------------- errors

def _errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = exc.errors()
        status, message = _validation_message(problems[0]) if problems else (422, "invalid request")
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
        return error(status, message)

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(ApiError)
    async def api(request: Request, exc: ApiError):
        return error(exc.status, str(exc))

    @app.exception_handler(NlpRnnError)
    async def library(request: Request, exc: NlpRnnError):
        return error(422, _api_words(str(exc)))

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy):
        return error(503, "the server is busy; retry later", {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(TimedOut)
    async def late(request: Request, exc: TimedOut):
        limit = request.app.state.config.timeout
        return error(408, f"the request ran past the server's time limit of {limit:g} s")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):
        return error(500, f"internal error ({type(exc).__name__}); the server log has the details")


def _validation_message(e: dict) -> tuple[int, str]:
    """One pydantic error as (status, one line a person can act on)."""
    kind, loc, msg = e.get("type", ""), [p for p in e.get("loc", ()) if p != "body"], e.get("msg", "")
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    if kind == "json_invalid":
        return 400, f"the body is not valid JSON: {e.get('ctx', {}).get('error', msg)}"
    if isinstance(e.get("input"), (bytes, bytearray)):
        return 415, "send the body as JSON (Content-Type: application/json)"
    if kind == "missing" and not where:
        return 400, "the body is empty; send a JSON object"
    if not where and kind in ("model_attributes_type", "dict_type", "model_type"):
        return 400, "the body must be a JSON object"
    if not where and kind == "list_type":
        return 400, "the body must be a JSON list"
    if kind == "missing":
        return 422, f"{where} is required"
    if kind == "string_unicode":
        return 422, f"{where} is not valid Unicode (an unpaired surrogate?)"
    if kind == "extra_forbidden":
        return 422, f"unknown field {where!r}"
    if kind == "value_error":
        text = str(e.get("ctx", {}).get("error", msg))
        return 422, f"{where} {text}" if where else text
    shown = e.get("input")
    shown = json.dumps(shown if not isinstance(shown, str) or len(shown) <= 40 else shown[:40] + "…",
                       ensure_ascii=False)
    text = re.sub(r"^(Input|Value|String|List)\s+", "", msg)
    text = re.sub(r" after validation, not \d+$", "", text)
    return 422, f"{where or 'the body'} {text[0].lower() + text[1:]}, not {shown}"


# ---------------------------------------------------------------------------------------------- the guard

class Guard:
    """Before the app sees a request: the API key for API paths, and the body size (a huge body is refused before
    it is read, a chunked one as soon as it passes the limit)."""

    def __init__(self, app, api_key: str | None, max_body: int):
        self.app, self.max_body = app, max_body
        self.key = api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.key is not None and scope["path"].startswith(("/v1/", "/translator/")):
            given = headers.get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                why = "this server needs an API key: send Authorization: Bearer KEY" if not given \
                    else "the API key is wrong"
                return await error(401, why, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        too_big = error(413, f"the body is larger than this server's limit of {self.max_body:,} bytes")
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body:
            return await too_big(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return await too_big(scope, receive, send)
            if not message.get("more_body", False):
                break
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # from now on: http.disconnect, when the client goes

        await self.app(scope, replay, send)
