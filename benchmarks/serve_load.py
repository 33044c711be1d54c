"""Load on a real `nlp-rnn serve` over loopback: requests/s, latency percentiles, errors and the server's memory.

    python -m benchmarks.serve_load                            # every scenario, 60 s each (about 5 minutes)
    python -m benchmarks.serve_load --duration 15 --scenarios single,batched

Scenarios (shipped models unless -m; English sentences from corpora/en-es/test.tsv):
    single         one client sends single sentences one after another: the baseline
    batched        --clients clients do the same at once; batched/single is the dynamic batcher's gain
    overload       sentences arrive at --overload times the batched throughput (open loop): the excess must be
                   refused (503) at once while the server's memory stays flat
    complete       one client types sentences key by key, one /v1/complete per key, on an idle server
    complete+load  the same while --clients clients keep the translator busy
    ceiling        no server: the shipped translator in this process, sentences one by one against batches of 32,
                   per CPU-second (one thread) — the most any batching server could gain with this model and beam

The server runs pinned to --server-cores and the clients to --client-cores, so they do not share a core. The
server's VmRSS/VmHWM come from /proc/PID/status. Prints a table, then one JSON object (also to --json-out).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SENTENCES = ROOT / "corpora" / "en-es" / "test.tsv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="single,batched,overload,complete,complete+load,ceiling")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per scenario")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--overload", type=float, default=4.0, help="arrival rate, as a multiple of batched throughput")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--server-cores", default="0", help="CPU cores for the server (comma list; '' = no pinning)")
    ap.add_argument("--client-cores", default="1", help="CPU cores for the clients ('' = no pinning)")
    ap.add_argument("--server-args", default="--threads 1 --max-batch 32",
                    help="extra `nlp-rnn serve` flags (e.g. '-m runs/de-en --max-queue 128')")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()

    sentences = [line.split("\t")[0] for line in SENTENCES.read_text(encoding="utf-8").splitlines() if line.strip()]
    server_cores = _cores(args.server_cores)
    proc, url = start_server(args.server_args.split(), server_cores)
    if cores := _cores(args.client_cores):
        os.sched_setaffinity(0, cores)
    try:
        report = asyncio.run(run(url, proc.pid, sentences, args))
    finally:
        proc.terminate()
        proc.wait(60)
    report["machine"] = {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(),
                         "server_cores": sorted(server_cores), "client_cores": args.client_cores,
                         "server_args": args.server_args, "duration_s": args.duration}
    if "ceiling" in args.scenarios.split(","):
        report["ceiling"] = ceiling(sentences, args.beam)
    print_table(report)
    print(json.dumps(report))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def _cores(text: str) -> set[int]:
    return {int(c) for c in text.split(",") if c.strip()} if text.strip() and (os.cpu_count() or 1) > 1 else set()


def start_server(extra: list[str], cores: set[int]) -> tuple[subprocess.Popen, str]:
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    proc = subprocess.Popen([sys.executable, "-m", "nlp_rnn", "serve", "--port", "0", "--no-access-log", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=pin, cwd=ROOT)
    found, lines = threading.Event(), []

    def read():
        for line in proc.stderr:
            lines.append(line)
            if "serving on" in line:
                found.set()
    threading.Thread(target=read, daemon=True).start()
    if not found.wait(300):
        proc.kill()
        sys.exit("the server did not start:\n" + "".join(lines))
    url = re.search(r"http://\S+/", next(x for x in lines if "serving on" in x)).group(0)
    for _ in range(600):
        try:
            httpx.get(url + "health", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    sys.exit("the server does not answer")


# ---------------------------------------------------------------------------------------------- measuring

class Stats:
    def __init__(self):
        self.latency: dict[str, list[float]] = {}  # status (or error name) → seconds
        self.start = time.perf_counter()
        self.end = None
        self.inside: list[float] = []  # seconds the server says it spent inside the model (complete)

    def add(self, status, seconds: float) -> None:
        self.latency.setdefault(str(status), []).append(seconds)

    def summary(self) -> dict:
        elapsed = (self.end or time.perf_counter()) - self.start
        ok = [x for s, v in self.latency.items() if s.startswith("2") for x in v]
        out = {"requests": sum(len(v) for v in self.latency.values()), "ok": len(ok),
               "ok_per_s": round(len(ok) / elapsed, 2), "seconds": round(elapsed, 1),
               "statuses": {s: len(v) for s, v in sorted(self.latency.items())}}
        out.update({f"ok_{k}": v for k, v in percentiles(ok).items()})
        if "503" in self.latency:
            out.update({f"refused_{k}": v for k, v in percentiles(self.latency["503"]).items()})
        if self.inside:
            out.update({f"in_model_{k}": v for k, v in percentiles(self.inside).items()})
        if hasattr(self, "sent_per_s"):
            out["sent_per_s"] = self.sent_per_s
        out["errors"] = sum(len(v) for s, v in self.latency.items() if not s.startswith("2") and s != "503")
        return out


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    v = sorted(values)
    at = lambda q: round(1000 * v[min(len(v) - 1, int(q * len(v)))], 1)  # noqa: E731
    return {"p50_ms": at(0.50), "p90_ms": at(0.90), "p95_ms": at(0.95), "p99_ms": at(0.99),
            "max_ms": round(1000 * v[-1], 1)}


class Memory:
    """The server's VmRSS over a scenario, sampled twice a second, its VmHWM (peak) at the end, and the CPU time it
    used: on a shared machine requests per CPU-second is the figure that does not depend on the neighbours."""

    def __init__(self, pid: int):
        self.pid, self.samples = pid, []
        self.cpu_start = self.cpu()

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def read(self) -> dict:
        text = Path(f"/proc/{self.pid}/status").read_text()
        return {k: int(re.search(rf"{k}:\s+(\d+)", text).group(1)) // 1024 for k in ("VmRSS", "VmHWM")}

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.samples.append(self.read()["VmRSS"])
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    def summary(self) -> dict:
        return {"rss_mb_first": self.samples[0], "rss_mb_last": self.samples[-1], "rss_mb_max": max(self.samples),
                "hwm_mb": self.read()["VmHWM"], "server_cpu_s": round(self.cpu() - self.cpu_start, 1)}


# ---------------------------------------------------------------------------------------------- load

class Pool:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams: a load generator must cost far less CPU than the
    server it loads (httpx spends about a millisecond a request, too much for 4x overload on a shared core)."""

    def __init__(self, url: str):
        m = re.match(r"http://\[?([^\]/]+?)\]?:(\d+)/", url)
        self.host, self.port, self.idle = m.group(1), int(m.group(2)), []

    async def post(self, path: str, body: dict) -> tuple[int, bytes]:
        data = json.dumps(body, ensure_ascii=False).encode()
        request = (b"POST /%s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(data), data))
        while True:
            reused = bool(self.idle)
            reader, writer = self.idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
            try:
                writer.write(request)
                status_line = await reader.readline()
            except ConnectionError:
                status_line = b""
            if status_line:
                break
            writer.close()
            if not reused:  # a kept-alive connection the server has since closed: retry on a new one
                raise ConnectionResetError("the server closed the connection")
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        answer = await reader.readexactly(length)
        if close:
            writer.close()
        else:
            self.idle.append((reader, writer))
        return int(status_line.split()[1]), answer

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def post(pool: Pool, stats: Stats, path: str, body: dict) -> bytes:
    start, answer = time.perf_counter(), b""
    try:
        status, answer = await pool.post(path, body)
    except (OSError, asyncio.IncompleteReadError, ValueError) as e:
        status = type(e).__name__
    stats.add(status, time.perf_counter() - start)
    return answer


async def closed_loop(url: str, clients: int, duration: float, body) -> Stats:
    """`clients` clients, each sending its next request as soon as the last is answered."""
    stats, end, pool = Stats(), time.monotonic() + duration, Pool(url)

    async def one(i: int) -> None:
        n = i
        while time.monotonic() < end:
            await post(pool, stats, "v1/translate", body(n))
            n += clients
    await asyncio.gather(*(one(i) for i in range(clients)))
    stats.end = time.perf_counter()
    pool.close()
    return stats


async def open_loop(url: str, rate: float, duration: float, body) -> Stats:
    """Requests at a steady `rate` per second whatever the answers: what a crowd does to a slow server."""
    stats, tasks, k, pool = Stats(), [], 0, Pool(url)
    start = time.monotonic()
    while time.monotonic() < start + duration:
        wait = start + k / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(post(pool, stats, "v1/translate", body(k))))
        k += 1
    await asyncio.gather(*tasks)
    stats.end = time.perf_counter()  # served per second counts the queue's tail too
    pool.close()
    stats.sent_per_s = round(k / duration, 1)
    return stats


async def typing(url: str, sentences: list[str], duration: float) -> Stats:
    """One person typing: a /v1/complete for every key, each sent when the last answer has come."""
    stats, end, pool = Stats(), time.monotonic() + duration, Pool(url)
    for sentence in _forever(sentences):
        for i in range(1, len(sentence) + 1):
            if time.monotonic() >= end:
                stats.end = time.perf_counter()
                pool.close()
                return stats
            answer = await post(pool, stats, "v1/complete", {"text": sentence[:i], "k": 3})
            if answer.startswith(b"{"):
                stats.inside.append(json.loads(answer).get("seconds", 0.0))


def _forever(items):
    while True:
        yield from items


async def scenario(name: str, pid: int, work) -> dict:
    memory, stop = Memory(pid), asyncio.Event()
    watcher = asyncio.create_task(memory.watch(stop))
    stats = await work
    stop.set()
    await watcher
    out = {"scenario": name, **stats.summary(), **memory.summary()}
    out["ok_per_cpu_s"] = round(out["ok"] / max(out["server_cpu_s"], 1e-9), 2)
    print(f"{name}: {json.dumps(out)}", file=sys.stderr, flush=True)
    return out


async def run(url: str, pid: int, sentences: list[str], args) -> dict:
    wanted = args.scenarios.split(",")
    body = lambda n: {"text": sentences[n % len(sentences)], "src": "en", "tgt": "es", "beam": args.beam}  # noqa: E731
    results = {}
    await closed_loop(url, 4, 3, body)  # warm-up, not measured
    if "single" in wanted:
        results["single"] = await scenario("single", pid, closed_loop(url, 1, args.duration, body))
    if "batched" in wanted:
        results["batched"] = await scenario("batched", pid, closed_loop(url, args.clients, args.duration, body))
        results["batched"]["clients"] = args.clients
    if "single" in results and "batched" in results:
        results["batching_gain"] = round(results["batched"]["ok_per_s"] / max(results["single"]["ok_per_s"], 1e-9), 2)
        results["batching_gain_per_cpu_s"] = round(results["batched"]["ok_per_cpu_s"]
                                                   / max(results["single"]["ok_per_cpu_s"], 1e-9), 2)
    if "overload" in wanted:
        capacity = results.get("batched", {}).get("ok_per_s") or 50.0
        rate = args.overload * capacity
        results["overload"] = await scenario("overload", pid, open_loop(url, rate, args.duration, body))
        results["overload"]["rate_per_s"] = round(rate, 1)
    if "complete" in wanted:
        results["complete"] = await scenario("complete", pid, typing(url, sentences, args.duration))
    if "complete+load" in wanted:
        async def both():
            load = asyncio.create_task(closed_loop(url, args.clients, args.duration, body))
            typed = await typing(url, sentences, args.duration)
            translated = await load
            results["complete+load_translations"] = translated.summary()
            return typed
        results["complete+load"] = await scenario("complete+load", pid, both())
    return results


def ceiling(sentences: list[str], beam: int) -> dict:
    """Sentences per CPU-second in-process, one at a time and in batches of 32 (shipped en→es, one thread)."""
    import torch

    from nlp_rnn.service import Service

    torch.set_num_threads(1)
    service = Service.shipped(device="cpu")
    service.translate(sentences[:4], direction="en-es", beam=beam)
    out = {}
    for name, size, count in (("one_by_one", 1, 64), ("batch_32", 32, 256)):
        start = time.process_time()
        for k in range(0, count, size):
            service.translate(sentences[k:k + size], direction="en-es", beam=beam, batch_size=32)
        out[f"{name}_per_cpu_s"] = round(count / (time.process_time() - start), 1)
    out["gain"] = round(out["batch_32_per_cpu_s"] / out["one_by_one_per_cpu_s"], 2)
    print(f"ceiling: {json.dumps(out)}", file=sys.stderr, flush=True)
    return out


def print_table(report: dict) -> None:
    cols = ["scenario", "requests", "ok_per_s", "ok_per_cpu_s", "server_cpu_s", "ok_p50_ms", "ok_p90_ms", "ok_p95_ms",
            "ok_p99_ms", "in_model_p95_ms", "errors", "statuses", "refused_p50_ms", "refused_p90_ms", "refused_p99_ms",
            "rss_mb_first", "rss_mb_last", "rss_mb_max", "hwm_mb"]
    rows = [r for r in report.values() if isinstance(r, dict) and "scenario" in r]
    print("\n" + " | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols))
    if "batching_gain" in report:
        print(f"batched / single throughput: {report['batching_gain']}x (per server CPU-second: "
              f"{report['batching_gain_per_cpu_s']}x)")
    if "ceiling" in report:
        print(f"the model's own batching gain (in-process, per CPU-second): {report['ceiling']['gain']}x")


if __name__ == "__main__":
    main()
