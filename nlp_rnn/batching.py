"""How the HTTP server takes in work: its limits (`ServerConfig`), a dynamic batcher, bounded thread lanes.

Concurrent translation requests become one model call:

    request A: 2 texts (en-es, beam 5) ─┐
    request B: 1 text  (en-es, beam 5) ─┼─ wait ≤ max_wait for max_batch texts ─→ run(key, A+B) ─→ A, B answered
    request C: 1 text  (es-en, beam 5) ─┴─ another key: the next round

Both the batcher and a `Lane` refuse work past their bound at once (`Busy`, with a retry estimate) and give up
on a caller past its time limit (`TimedOut`). Nothing here knows about HTTP or models, so the command line reads
the server's defaults and ranges from here without importing the web stack.
"""
from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Hashable, Optional

from .errors import UsageError
from .limits import LIMITS, Range

# The server's own flags: how much one request may ask for and how much work may wait.
SERVER_LIMITS: dict[str, Range] = {
    "max_batch": Range(1, 4096), "batch_wait_ms": Range(0, 1000, integer=False), "max_queue": Range(1, 100_000),
    "max_streams": Range(1, 1024), "timeout": Range(0, 3600, integer=False, lo_open=True),
    "max_chars": Range(1, 1_000_000), "max_texts": Range(1, 10_000), "max_beam": Range(1, LIMITS["beam"].hi),
    "max_length": Range(1, LIMITS["length"].hi), "max_body": Range(1024, 1 << 30),
}


@dataclass
class ServerConfig:
    """What `nlp-rnn serve` sets with flags; the defaults are safe for a small shared machine."""

    api_key: Optional[str] = None
    cors_origins: tuple = ()
    max_batch: int = 32          # sentences per translation batch
    batch_wait_ms: float = 2.0   # how long the first request of a batch waits for company
    max_queue: int = 256         # sentences waiting for translation (and completions waiting); past it: 503
    max_streams: int = 4         # generations at once; past it: 503
    timeout: float = 30.0        # seconds a request may take; past it: 408
    max_chars: int = 1000        # characters per text or prompt
    max_texts: int = 64          # texts per request
    max_beam: int = 16
    max_length: int = 2000       # characters per generation
    max_body: int = 1_000_000    # bytes per request body

    def check(self) -> "ServerConfig":
        for name, r in SERVER_LIMITS.items():
            if not r.contains(getattr(self, name)):
                raise UsageError(f"--{name.replace('_', '-')} must be {r.text()}, not {getattr(self, name)!r}")
        if self.max_texts > self.max_queue:
            raise UsageError(f"--max-texts ({self.max_texts}) cannot exceed --max-queue ({self.max_queue})")
        return self


class Busy(Exception):
    """The queue is full; `retry_after` is a guess, in seconds, of when it will have room."""

    def __init__(self, retry_after: int = 1):
        super().__init__(f"busy, retry in {retry_after} s")
        self.retry_after = retry_after


class TimedOut(Exception):
    """The caller's time limit passed before its answer was ready."""


@dataclass(eq=False)
class _Job:
    key: Hashable
    items: list
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


class Batcher:
    """Collects jobs with the same key into batches of up to `max_batch` items for `run(key, items) -> results`
    (one result per item, in order), run one batch at a time on a worker thread. At most `max_queue` items wait."""

    def __init__(self, run: Callable[[Hashable, list], list], max_batch: int = 32, max_wait: float = 0.002,
                 max_queue: int = 256):
        self.run, self.max_batch, self.max_wait, self.max_queue = run, max_batch, max_wait, max_queue
        self._jobs: deque[_Job] = deque()
        self.queued = 0                 # items waiting (not those being run)
        self.batches: list[int] = []    # sizes of the last batches run, newest last (for tests and logs)
        self._rate = 0.0                # items per second, a moving average
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="nlp-rnn-batch")

    async def submit(self, key: Hashable, items: list, timeout: float) -> list:
        """The results for `items`, run in a batch with other jobs of the same key."""
        waiting = self.queued + len(items)
        # full, or so long that the caller would likely time out in it (half the limit: throughput varies)
        if waiting > self.max_queue or (self._rate > 0 and waiting / self._rate > timeout / 2):
            raise Busy(self.retry_after())
        if self._task is None or self._task.done():  # started by the first job, inside the server's loop
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._loop())
        job = _Job(key, list(items), asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self.queued += len(items)
        self._wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout)
        except asyncio.TimeoutError:
            raise TimedOut() from None
        finally:
            if not job.future.done():   # timed out or cancelled: never run it
                self._drop(job)
                job.future.cancel()

    def retry_after(self) -> int:
        return max(1, min(60, math.ceil(self.queued / self._rate))) if self._rate > 0 else 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for job in list(self._jobs):
            self._drop(job)
            job.future.cancel()
        self._executor.shutdown(wait=True)

    def _drop(self, job: _Job) -> None:
        try:
            self._jobs.remove(job)
            self.queued -= len(job.items)
        except ValueError:
            pass

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._jobs:
                self._wake.clear()
                await self._wake.wait()
            head = self._jobs[0]
            while (waiting := head.enqueued + self.max_wait - time.monotonic()) > 0 and \
                    sum(len(j.items) for j in self._jobs if j.key == head.key) < self.max_batch:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), waiting)
                except asyncio.TimeoutError:
                    break
            if not self._jobs or self._jobs[0] is not head:  # the head gave up while we waited
                continue
            batch, size = [], 0
            for job in list(self._jobs):
                if job.key == head.key and (not batch or size + len(job.items) <= self.max_batch):
                    batch.append(job)
                    size += len(job.items)
            for job in batch:
                self._drop(job)
            await self._run(loop, head.key, batch)

    async def _run(self, loop, key, batch: list[_Job]) -> None:
        items = [x for job in batch for x in job.items]
        start = time.monotonic()
        try:
            results = await loop.run_in_executor(self._executor, self.run, key, items)
        except Exception as e:
            if len(batch) > 1:  # one bad job must not fail the others: run each alone
                for job in batch:
                    await self._run(loop, key, [job])
                return
            _settle(batch[0], error=e)
            return
        self.batches = self.batches[-99:] + [len(items)]
        seconds = max(time.monotonic() - start, 1e-6)
        self._rate = len(items) / seconds if self._rate == 0 else 0.8 * self._rate + 0.2 * len(items) / seconds
        at = 0
        for job in batch:
            _settle(job, results[at: at + len(job.items)])
            at += len(job.items)


def _settle(job: _Job, result=None, error: Exception | None = None) -> None:
    if job.future.done():  # its caller gave up
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result)


class Lane:
    """`workers` threads for one kind of request, with at most `max_pending` requests running or waiting."""

    def __init__(self, name: str, workers: int, max_pending: int):
        self.max_pending, self.pending = max_pending, 0
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"nlp-rnn-{name}")

    def take(self) -> None:
        """Claim a place for a request that will make several `call`s (a stream); `give` returns it."""
        if self.pending >= self.max_pending:
            raise Busy(1)
        self.pending += 1

    def give(self) -> None:
        self.pending -= 1

    async def call(self, fn: Callable, *args):
        """`fn(*args)` on a lane thread, without claiming a place (the caller holds one)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self, fn: Callable, *args, timeout: float):
        """`fn(*args)` on a lane thread; the place is held until the thread is done, even after a time-out."""
        self.take()
        loop = asyncio.get_running_loop()
        try:
            work = self._executor.submit(fn, *args)
        except BaseException:
            self.give()
            raise
        work.add_done_callback(lambda _: _call_soon(loop, self.give))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(work), timeout)  # cancels it if not yet started
        except asyncio.TimeoutError:
            raise TimedOut() from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable) -> None:
    try:
        loop.call_soon_threadsafe(fn)
    except RuntimeError:  # the loop is closed: the server is gone
        pass
