"""A warm pool of sandbox containers and the async API the reward server calls.

    async with SandboxPool(SandboxConfig(workers=2)) as pool:
        result = await pool.run(problem, code)       # -> ProgramResult

N containers are started ahead. A job waits for an idle container (FIFO), runs, and the
container goes back to the idle queue only when the runner reports it clean: no stray
process survived, its own memory did not grow past the cap, and it has served fewer than
`jobs_per_container` jobs. Otherwise it is removed and a replacement is started in the
background. A container that dies or goes silent mid-job makes that job run again once on
another container; a second fault gives SANDBOX_ERROR (no reward), never a wrong answer.
Cancelling `run` kills the job inside the container.

A program in a compiled language (`languages.py`) is compiled once per job, in the container,
and its artefact runs every test; the outcome goes into the pool's binary cache
(`binaries.py`), so an identical source later runs the cached artefact (sent with the job)
or gets its cached COMPILE_ERROR without reaching a container.

A problem with a checker has its io tests' outputs judged by it, in jobs of their own after the
program's (`checking.py`; the rules are `checkers.py`'s).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import docker
import docker.errors

from . import languages
from .binaries import BinaryCache, cache_key
from .checking import CheckerRuns
from .compare import compare_json, compare_stdout
from .config import SandboxConfig
from .container import Sandbox, SandboxFault, sweep_orphans
from .image import image_tag
from .runner.protocol import Compiled, Files, Job, JobLimits, JobTest, Result, TestReport, job_deadline_s
from .types import AssertTest, CallTest, IoTest, Limits, Problem, ProgramResult, TestCase, TestResult, Verdict

log = logging.getLogger(__name__)

CANCEL_TIMEOUT_S = 2.0
ATTEMPTS = 2


class PoolListener:
    """Hooks for metrics; every method is a no-op here. Called on the event loop."""

    def container_started(self, seconds: float) -> None: ...
    def container_retired(self, reason: str) -> None: ...
    def job_finished(self, queue_wait_s: float, run_s: float) -> None: ...
    def sandbox_error(self, detail: str) -> None: ...
    def compiled(self, language: str, compiled: Compiled) -> None: ...
    def binary_cache(self, language: str, hit: bool) -> None: ...
    def checker_failed(self, language: str, reason: str) -> None: ...


def build_job(problem: Problem, code: str, limits: Limits, fail_fast: bool, artefact: Files | None = None) -> Job:
    """The runner's job (see `runner/protocol.py`). Expected outputs stay out of it. Raises
    ValueError for an unknown language or a test kind the language cannot be judged by."""
    try:
        language = languages.get(problem.language)
    except KeyError:
        raise ValueError(f"language {problem.language!r} is not one of {', '.join(languages.LANGUAGES)}") from None
    tests: list[JobTest] = []
    for test in problem.tests:
        if isinstance(test, AssertTest):
            tests.append(JobTest("assert", code=test.code))
        elif isinstance(test, IoTest):
            tests.append(JobTest("io", stdin=test.stdin))
        elif isinstance(test, CallTest):
            tests.append(JobTest("call", args_json=test.args_json))
        else:
            raise TypeError(f"unknown test type {type(test).__name__}")
        if tests[-1].kind not in language.test_kinds:
            raise ValueError(f"a {language.name} program can only be judged by {' or '.join(language.test_kinds)} tests, not {tests[-1].kind}")
    return Job(
        program=code,
        tests=tuple(tests),
        limits=JobLimits(limits.time_limit_s, limits.memory_limit_mb, limits.output_limit_bytes),
        setup_code=problem.setup_code,
        entry_point=problem.entry_point,
        program_names=problem.program_names,
        fail_fast=fail_fast,
        language=language.name,
        artefact=artefact,
        compile_cpu_s=language.compile_cpu_s if language.compiled else 0.0,
        compile_memory_mb=language.compile_memory_mb if language.compiled else 0,
    )


def _finish(problem: Problem, test: TestCase, report: TestReport) -> tuple[Verdict, str]:
    """A report the runner decided, or the host's comparison of a completed io/call test's output
    (a problem with a checker has its io tests settled by `SandboxPool._check` instead)."""
    if report.verdict is not None:
        return report.verdict, report.detail
    output = report.output or ""
    if isinstance(test, IoTest):
        diff = compare_stdout(test.expected_stdout, output, problem.output_check)
    elif isinstance(test, CallTest):
        diff = compare_json(test.expected_json, output)
    else:
        return Verdict.SANDBOX_ERROR, "the runner asked to compare the output of an assert test"
    return (Verdict.PASSED, "") if diff is None else (Verdict.FAILED, diff)


def _to_result(problem: Problem, reply: Result, wall_time_s: float, checked: dict[int, tuple[Verdict, str]]) -> ProgramResult:
    tests = []
    for i, (test, report) in enumerate(zip(problem.tests, reply.tests)):
        verdict, detail = checked[i] if i in checked else _finish(problem, test, report)
        tests.append(TestResult(verdict, report.wall_time_s, detail))
    return ProgramResult.from_tests(tuple(tests), wall_time_s)


class SandboxUnavailable(Exception):
    """No container has been alive for `outage_timeout_s`."""

    def __init__(self, waited_s: float) -> None:
        super().__init__(f"no sandbox container alive for {waited_s:.0f}s (is the Docker engine up? see the server's log)")


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("background task %s failed: %r", task.get_name(), task.exception())


class SandboxPool:
    def __init__(
        self, config: SandboxConfig | None = None, *, client: docker.DockerClient | None = None, listener: PoolListener | None = None
    ) -> None:
        self.config = config or SandboxConfig()
        self.image = self.config.image or image_tag()
        self.listener = listener or PoolListener()
        self._client = client
        self._idle: asyncio.Queue[Sandbox] = asyncio.Queue()
        self._live: set[Sandbox] = set()
        self._busy = 0
        self._waiting = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cancellable: set[asyncio.Task[Any]] = set()  # watchers and replacements
        self._closing = False
        self._outage = asyncio.Event()  # set once no container has been alive for outage_timeout_s
        self._first: collections.deque[asyncio.Future[Sandbox]] = collections.deque()  # jobs served before the queue
        self._outage_timer: asyncio.Task[Any] | None = None
        self.binaries = BinaryCache(self.config.binary_cache_entries, self.config.binary_cache_mb << 20)
        self.compiles = 0  # compiles run in containers (a cache hit runs none)
        self._compiling: dict[Any, asyncio.Future[None]] = {}  # cache key -> done when the job compiling it ends
        self.checkers = CheckerRuns(self)

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Sweep orphans, then start every container; returns when all are warm."""
        if self._client is None:
            self._client = await asyncio.to_thread(docker.from_env, timeout=30)
        client = self._client
        try:
            await asyncio.to_thread(client.images.get, self.image)
        except docker.errors.ImageNotFound:
            raise RuntimeError(f"sandbox image {self.image} is missing: build it with `codereward-build-image`") from None
        swept = await asyncio.to_thread(sweep_orphans, client)
        if swept:
            log.info("removed %d orphaned sandbox containers", swept)
        starts = [self._spawn(self._start_one()) for _ in range(self.config.workers)]
        results = await asyncio.gather(*(asyncio.shield(task) for task in starts), return_exceptions=True)
        faults = [r for r in results if isinstance(r, BaseException)]
        if faults:
            await self.close()
            raise faults[0]

    async def _start_one(self) -> Sandbox:
        """Start one container. Runs as its own task, never cancelled: a container created
        in a worker thread must always reach `_live` or be removed."""
        assert self._client is not None
        began = time.monotonic()
        sandbox = await Sandbox.start(self._client, self.config, self.image)
        if self._closing:  # the pool closed while this one was starting
            await sandbox.close()
            return sandbox
        self._live.add(sandbox)
        self._outage_over()
        self._spawn(self._watch(sandbox), cancel_on_close=True)
        self._put_idle(sandbox)
        self.listener.container_started(time.monotonic() - began)
        return sandbox

    async def _watch(self, sandbox: Sandbox) -> None:
        await sandbox.exited.wait()
        self._retire(sandbox, sandbox.retire_reason or "crashed")

    async def _replace(self) -> None:
        delay = 0.5
        while not self._closing:
            try:
                await asyncio.shield(self._spawn(self._start_one()))
                return
            # Any failure, not only SandboxFault: a replacement that gave up would shrink the pool
            # for good (found with the Docker engine stopped and started under a server).
            except Exception as exc:
                log.warning("replacement sandbox failed to start (%r); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _retire(self, sandbox: Sandbox, reason: str) -> None:
        """Remove a container and start its replacement (once per container)."""
        if sandbox not in self._live:
            return
        self._live.discard(sandbox)
        self.listener.container_retired(reason)
        self._spawn(sandbox.close())
        if not self._closing:
            self._spawn(self._replace(), cancel_on_close=True)
            if not self._live and self._outage_timer is None and self.config.outage_timeout_s > 0:
                self._outage_timer = self._spawn(self._declare_outage(), cancel_on_close=True)

    async def _declare_outage(self) -> None:
        await asyncio.sleep(self.config.outage_timeout_s)
        if not self._live:
            log.error("no sandbox container alive for %.0fs: answering SANDBOX_ERROR until one is back", self.config.outage_timeout_s)
            self._outage.set()

    def _outage_over(self) -> None:
        if self._outage_timer is not None:
            self._outage_timer.cancel()
            self._outage_timer = None
        if self._outage.is_set():
            log.warning("a sandbox container is alive again: the outage is over")
            self._outage.clear()

    def _spawn(self, coro: Any, cancel_on_close: bool = False) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        task.add_done_callback(_log_failure)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if cancel_on_close:
            self._cancellable.add(task)
            task.add_done_callback(self._cancellable.discard)
        return task

    async def close(self) -> None:
        """Remove every container; waits for starts and removals in flight."""
        self._closing = True
        for task in list(self._cancellable):
            task.cancel()
        for sandbox in list(self._live):
            self._live.discard(sandbox)
            self._spawn(sandbox.close())
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- state ------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Containers alive now (busy or idle)."""
        return len(self._live)

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def idle(self) -> int:
        return max(0, self.size - self._busy)

    @property
    def waiting(self) -> int:
        """Jobs waiting for a container."""
        return self._waiting

    # -- jobs -------------------------------------------------------------------------------

    def _release(self, sandbox: Sandbox, health: dict[str, Any] | None) -> None:
        if sandbox not in self._live:
            return
        health = health or {}
        if sandbox.dead:  # retiring (the runner said why) or exited: its watcher retires it
            return
        elif health.get("rss_kb", 0) > self.config.max_runner_rss_mb * 1024:
            self._retire(sandbox, "memory_growth")
        elif sandbox.jobs >= self.config.jobs_per_container:
            self._retire(sandbox, "job_count")
        else:
            self._put_idle(sandbox)

    async def _release_when_ready(self, sandbox: Sandbox, job_id: int, health: dict[str, Any] | None) -> None:
        """Back to the idle queue once the runner says it is clean again (`ready`); a runner that
        retires instead, or says nothing, never gets another job."""
        if await sandbox.wait_ready(job_id, self.config.start_timeout_s):
            self._release(sandbox, health)
        elif not sandbox.dead:
            self._retire(sandbox, "not_ready")

    @property
    def in_outage(self) -> bool:
        """No container has been alive for `outage_timeout_s`: jobs get SANDBOX_ERROR at once."""
        return self._outage.is_set()

    async def _acquire(self, first: bool = False) -> Sandbox:
        """An idle live container; with `first`, before any job that waits without it. Raises
        SandboxUnavailable during an outage (`in_outage`)."""
        self._waiting += 1
        try:
            while True:
                sandbox = await self._next_idle(first)
                if sandbox in self._live and not sandbox.dead:
                    return sandbox
        finally:
            self._waiting -= 1

    def _put_idle(self, sandbox: Sandbox) -> None:
        """A container that can take a job: to the first job waiting `first`, else the queue."""
        while self._first:
            waiter = self._first.popleft()
            if not waiter.done():
                waiter.set_result(sandbox)
                return
        self._idle.put_nowait(sandbox)

    async def _next_idle(self, first: bool = False) -> Sandbox:
        if not self._idle.empty():
            return self._idle.get_nowait()
        if self._outage.is_set():
            raise SandboxUnavailable(self.config.outage_timeout_s)
        getting: asyncio.Future[Sandbox]
        if first:
            getting = asyncio.get_running_loop().create_future()
            self._first.append(getting)
        else:
            getting = asyncio.ensure_future(self._idle.get())
        outage = asyncio.ensure_future(self._outage.wait())
        try:
            await asyncio.wait((getting, outage), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            if getting.done() and not getting.cancelled():  # handed one, or took it off the queue: give it back
                self._put_idle(getting.result())
            raise
        finally:
            outage.cancel()
            if not getting.done():
                getting.cancel()
                await asyncio.gather(getting, return_exceptions=True)
        if getting.done() and not getting.cancelled():  # it may have finished as the outage began
            return getting.result()
        raise SandboxUnavailable(self.config.outage_timeout_s)

    async def _settle_cancelled(self, sandbox: Sandbox, job_id: int) -> None:
        try:
            reply = await sandbox.cancel(job_id, CANCEL_TIMEOUT_S)
        except SandboxFault:
            self._retire(sandbox, "cancel_unacknowledged")
            return
        await self._release_when_ready(sandbox, job_id, reply.get("health"))

    @contextlib.asynccontextmanager
    async def _compile_once(
        self, language: languages.Language, code: str, headers: Files = (), cache: BinaryCache | None = None
    ) -> AsyncIterator[Compiled | None]:
        """The cached compile of this source, if there is one; None: the job compiles it, and
        `_remember_compile` keeps what it gave. Single flight: while a job compiles a source,
        others with the same source wait for it and then take its binary from the cache, so a
        group's identical programs (or its checker, once per program) compile once. A job waits
        for one flight only: if that left nothing in the cache, it compiles on its own, so jobs
        never queue behind each other's compiles."""
        if not language.compiled:
            yield None
            return
        cache = cache or self.binaries
        key = cache_key(language, code, headers)
        if (flight := self._compiling.get(key)) is not None and cache.max_entries > 0:
            await asyncio.wait([flight])  # being cancelled here leaves the compiling job alone
        cached = cache.get(key)
        self.listener.binary_cache(language.name, cached is not None)
        if cached is not None:
            yield cached
            return
        if key in self._compiling:  # another job compiles it now: this one compiles too, unregistered
            yield None
            return
        flight = asyncio.get_running_loop().create_future()
        self._compiling[key] = flight
        try:
            yield None
        finally:
            del self._compiling[key]
            flight.set_result(None)

    def _remember_compile(
        self, language: languages.Language, code: str, reply: Result, headers: Files = (), cache: BinaryCache | None = None
    ) -> None:
        if reply.compiled is not None:
            self.compiles += 1
            self.listener.compiled(language.name, reply.compiled)
            (cache or self.binaries).put(cache_key(language, code, headers), reply.compiled)

    async def run(self, problem: Problem, code: str, *, fail_fast: bool = False) -> ProgramResult:
        """Run `code` against `problem`'s tests. Raises ValueError for limits above the caps,
        an unknown language, or tests its language cannot be judged by."""
        limits = self.config.resolve(problem.limits)
        build_job(problem, code, limits, fail_fast)  # raises before any cache is consulted
        language = languages.get(problem.language)
        began = time.monotonic()
        async with self._compile_once(language, code) as cached:
            if cached is not None and not cached.ok:  # the same source fails to compile the same way
                return ProgramResult.from_tests(tuple(TestResult(Verdict.COMPILE_ERROR, 0.0, cached.detail) for _ in problem.tests))
            job = build_job(problem, code, limits, fail_fast, artefact=cached.files if cached is not None else None)
            reply, detail = await self._execute(job, self.deadline(job, language, compiles=cached is None))
            if reply is not None:
                self._remember_compile(language, code, reply)
        if reply is not None and reply.fault(len(problem.tests)):
            detail, reply = reply.fault(len(problem.tests)), None
        if reply is None:
            self.listener.sandbox_error(detail)
            return ProgramResult.sandbox_error(len(problem.tests), detail)
        checked = await self.checkers.check(problem, reply.tests, fail_fast) if problem.checker is not None else {}
        # In a thread: comparing a large hostile value must not hold up the event loop.
        result = await asyncio.to_thread(_to_result, problem, reply, time.monotonic() - began, checked)
        if any(v is Verdict.SANDBOX_ERROR for v, _ in checked.values()):
            self.listener.sandbox_error("the problem's checker failed")
        return result

    def deadline(self, job: Job, language: languages.Language, compiles: bool) -> float:
        """How long the host waits for a job's reply: its tests' overload caps, and its compile's."""
        cpus = self.config.quota_cpus
        timeout = job_deadline_s(len(job.tests), language.test_cpu_s(job.limits.time_limit_s), self.config.job_grace_s, cpus)
        if language.compiled and compiles:  # the compile is timed as a test is, under its own limit
            timeout += job_deadline_s(1, language.compile_cpu_s, 0.0, cpus)
        return timeout

    async def _execute(self, job: Job, timeout: float, first: bool = False) -> tuple[Result | None, str]:
        """Run a job on an idle container, and once more on another if that one dies or goes
        silent: its reply, or None and why there is none. `first`: ahead of the jobs waiting
        for a container (a checker's, whose program holds its outputs meanwhile)."""
        detail = "no attempt made"
        queued = time.monotonic()
        for _ in range(ATTEMPTS):
            try:
                sandbox = await self._acquire(first)
            except SandboxUnavailable as exc:
                return None, str(exc)
            began = time.monotonic()
            self._busy += 1
            try:
                reply = await sandbox.run(job, timeout)
            except SandboxFault as exc:
                detail = str(exc)
                log.warning("job fault, retrying elsewhere: %s", detail)
                self._retire(sandbox, "crashed" if sandbox.dead else "unresponsive")
                continue
            except asyncio.CancelledError:
                self._spawn(self._settle_cancelled(sandbox, sandbox.current_job))
                raise
            finally:
                self._busy -= 1
            self._spawn(self._release_when_ready(sandbox, sandbox.current_job, reply.health))
            self.listener.job_finished(began - queued, time.monotonic() - began)
            return reply, ""
        return None, detail
