"""`nlp-rnn serve`: the HTTP API and the web playground (uvicorn over the app in nlp_rnn.server)."""
from __future__ import annotations

import copy
import ipaddress
import socket
import time
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ..batching import SERVER_LIMITS, ServerConfig
from ..errors import UsageError
from .common import Device, Quantize, Threads, examples, info, setup, state, warn

D = ServerConfig  # the defaults shown in --help are the server's own


def _range(name: str) -> str:
    r = SERVER_LIMITS[name]
    num = lambda x: f"{int(x):,}" if float(x).is_integer() else f"{x:g}"  # noqa: E731
    return f" [{'>' if r.lo_open else ''}{num(r.lo)}–{num(r.hi)}]"


def serve(
    models: Annotated[Optional[List[Path]], typer.Option(
        "--model", "-m", help="A checkpoint or training run directory to serve; repeat for more (the kind of each "
                              "is read from it). Default: the shipped models.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0: "
                                                     "every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: any free port). [0–65,535]")] = 8000,
    api_key: Annotated[Optional[str], typer.Option(
        "--api-key", envvar="NLP_RNN_API_KEY", show_envvar=True,
        help="Require 'Authorization: Bearer KEY' on every API endpoint (not /health or the page).")] = None,
    cors_origin: Annotated[Optional[List[str]], typer.Option(
        "--cors-origin", help="Let pages from this origin call the API from a browser (repeatable; '*': any). "
                              "Default: none.")] = None,
    max_batch: Annotated[int, typer.Option(
        "--max-batch", help="Most sentences translated in one batch." + _range("max_batch"))] = D.max_batch,
    batch_wait_ms: Annotated[float, typer.Option(
        "--batch-wait-ms", help="How long a translation waits for others to batch with (0: never waits)."
        + _range("batch_wait_ms"))] = D.batch_wait_ms,
    max_queue: Annotated[int, typer.Option(
        "--max-queue", help="Sentences (and completions) that may wait; past it requests get 503 at once."
        + _range("max_queue"))] = D.max_queue,
    max_streams: Annotated[int, typer.Option(
        "--max-streams", help="Generations at once; past it requests get 503." + _range("max_streams"))
    ] = D.max_streams,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Seconds a request may take; past it the answer is 408." + _range("timeout"))] = D.timeout,
    max_chars: Annotated[int, typer.Option(
        "--max-chars", help="Characters per text or prompt." + _range("max_chars"))] = D.max_chars,
    max_texts: Annotated[int, typer.Option(
        "--max-texts", help="Texts per request." + _range("max_texts"))] = D.max_texts,
    max_beam: Annotated[int, typer.Option(
        "--max-beam", help="Largest beam (and n_best) a request may ask for." + _range("max_beam"))] = D.max_beam,
    max_length: Annotated[int, typer.Option(
        "--max-length", help="Most characters one generation may ask for." + _range("max_length"))] = D.max_length,
    max_body: Annotated[int, typer.Option(
        "--max-body", help="Bytes per request body; a larger one is refused before it is read (413)."
        + _range("max_body"))] = D.max_body,
    shutdown_timeout: Annotated[float, typer.Option(
        "--shutdown-timeout", help="On Ctrl-C or SIGTERM, seconds to let requests in flight finish."
        + _range("timeout"))] = 30.0,
    access_log: Annotated[bool, typer.Option(
        "--access-log/--no-access-log", help="Log one line per request on stderr.")] = True,
    threads: Threads = None,
    device: Device = "auto",
    quantize: Quantize = "none",
):
    """Serve the models over HTTP: a JSON API (OpenAPI page at /docs) and the web playground at /.

    Models are loaded once, before the server listens. Translations from concurrent requests are batched; a full
    queue answers 503 with Retry-After, a request past --timeout 408. SIGTERM or Ctrl-C stops taking requests and
    lets those in flight finish."""
    cfg = ServerConfig(api_key=api_key or None, cors_origins=tuple(cors_origin or ()), max_batch=max_batch,
                       batch_wait_ms=batch_wait_ms, max_queue=max_queue, max_streams=max_streams, timeout=timeout,
                       max_chars=max_chars, max_texts=max_texts, max_beam=max_beam, max_length=max_length,
                       max_body=max_body).check()
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be a whole number from 0 to 65,535, not {port}")
    if not SERVER_LIMITS["timeout"].contains(shutdown_timeout):
        raise UsageError(f"--shutdown-timeout must be {SERVER_LIMITS['timeout'].text()}, not {shutdown_timeout!r}")
    sock = _bind(host, port)  # before loading: a port in use is said at once
    dev = setup(threads, device)
    start = time.perf_counter()
    service = _service(models or [], dev, quantize)

    from ..server import create_app, load_models

    load_models(service)
    app = create_app(service, cfg)
    names = ", ".join(e["name"] for e in service.describe())
    info(f"{names or 'no models'} loaded in {time.perf_counter() - start:.1f}s")
    if not cfg.api_key and not _loopback(host):
        warn(f"listening on {host} without --api-key: anyone who can reach this port can use the API")
    shown = f"[{host}]" if ":" in host else host
    info(f"serving on http://{shown}:{sock.getsockname()[1]}/  (API docs: /docs; Ctrl-C stops)")

    import uvicorn

    logging = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    logging["handlers"]["access"]["stream"] = "ext://sys.stderr"  # stdout is for results, and a server has none
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning" if state.quiet else "info", log_config=logging,
                                           access_log=access_log and not state.quiet, server_header=False,
                                           timeout_graceful_shutdown=shutdown_timeout))
    server.run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        raise UsageError(f"cannot listen on {host} port {port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _service(paths: list[Path], device, quantize: str):
    """The service over the given checkpoints (each filed by the kind its config says), or the shipped models."""
    from ..checkpoint import read_config, resolve_model_dir
    from ..service import Service

    by_kind: dict[str, list[Path]] = {"lm": [], "mt": [], "clf": []}
    for p in paths:
        by_kind[read_config(resolve_model_dir(p.expanduser()))["kind"]].append(p)
    if len(by_kind["lm"]) > 1:
        raise UsageError("give at most one language model with -m: it serves every language")
    service = Service(**by_kind, shipped=not paths, device=device, quantize=quantize)
    if len(service.translators) < len(by_kind["mt"]) or len(service.classifiers) < len(by_kind["clf"]):
        raise UsageError("two of the models given have the same languages or name; give one of each")
    return service


def register(app: typer.Typer) -> None:
    app.command("serve", epilog=examples(
        "nlp-rnn serve",
        "nlp-rnn serve -m runs/de-en -m runs/shakespeare --port 8080 --max-batch 64",
        "NLP_RNN_API_KEY=$(openssl rand -hex 16) nlp-rnn serve --host 0.0.0.0"))(serve)
