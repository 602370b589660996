"""Prometheus metrics of one reward server (prefix `codereward_`), on its own registry so
that several servers can live in one process (tests) without clashing."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sandboxes.pool import PoolListener, SandboxPool
from sandboxes.runner.protocol import Compiled
from sandboxes.types import ProgramResult

# Program and test times span sub-millisecond fork-and-exec to the 30 s limit.
TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics(PoolListener):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "codereward_requests", "Requests (groups) answered, by RPC method and gRPC status code.", ["method", "code"], registry=r
        )
        self.request_seconds = Histogram(
            "codereward_request_duration_seconds", "Time to answer one request (group).", ["method"], buckets=TIME_BUCKETS, registry=r
        )
        self.inflight = Gauge("codereward_inflight_requests", "Requests being scored now.", registry=r)
        self.programs = Counter("codereward_programs", "Programs run in a sandbox, by verdict and language.", ["verdict", "language"], registry=r)
        self.tests = Counter("codereward_tests", "Tests run, by verdict and language.", ["verdict", "language"], registry=r)
        self.compiles = Counter(
            "codereward_compiles", "Compiles run in a sandbox, by language and outcome (ok, error).", ["language", "outcome"], registry=r
        )
        self.compile_seconds = Histogram(
            "codereward_compile_duration_seconds", "Wall time of one compile in its sandbox.", ["language"], buckets=TIME_BUCKETS, registry=r
        )
        self.binary_cache_lookups = Counter(
            "codereward_binary_cache_lookups",
            "Lookups of a compiled language's program in the binary cache, by language and result (hit, miss).",
            ["language", "result"],
            registry=r,
        )
        self.program_seconds = Histogram(
            "codereward_program_duration_seconds",
            "Wall time of one program's job in its sandbox (all its tests).",
            buckets=TIME_BUCKETS,
            registry=r,
        )
        self.test_seconds = Histogram("codereward_test_duration_seconds", "Wall time of one test.", buckets=TIME_BUCKETS, registry=r)
        self.queue_wait = Histogram(
            "codereward_queue_wait_seconds", "Time a program waited for a free sandbox.", buckets=TIME_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("codereward_queue_depth", "Programs waiting for a free sandbox.", registry=r)
        self.admitted = Gauge(
            "codereward_admitted_programs", "Programs admitted and not yet finished (queued or running); capped by max_queue.", registry=r
        )
        self.queue_limit = Gauge("codereward_queue_limit", "The admission limit (max_queue).", registry=r)
        self.sandboxes = Gauge("codereward_sandboxes", "Sandbox containers, by state.", ["state"], registry=r)
        self.container_starts = Counter("codereward_container_starts", "Sandbox containers started.", registry=r)
        self.container_start_seconds = Histogram(
            "codereward_container_start_duration_seconds", "Time from create to the runner's hello.", registry=r
        )
        self.container_recycles = Counter(
            "codereward_container_recycles", "Sandbox containers retired, by reason (job_count, crashed, ...).", ["reason"], registry=r
        )
        self.container_crashes = Counter("codereward_container_crashes", "Sandbox containers that died or went silent.", registry=r)
        self.dedup_hits = Counter(
            "codereward_dedup_hits", "Completions not run because an identical program of the same request was.", registry=r
        )
        self.sandbox_errors = Counter("codereward_sandbox_errors", "Programs answered SANDBOX_ERROR (infrastructure faults).", registry=r)
        self.checker_failures = Counter(
            "codereward_checker_failures",
            "Tests a problem's checker failed by itself (its own failure, its expected answer not accepted, no compile, its sandbox): SANDBOX_ERROR, never the program's.",
            ["language", "reason"],
            registry=r,
        )
        self.outage = Gauge(
            "codereward_sandbox_outage",
            "1 while no sandbox container has been alive for outage_timeout_s (programs answered SANDBOX_ERROR).",
            registry=r,
        )
        self.rejected = Counter("codereward_rejected_requests", "Requests refused before any work, by reason.", ["reason"], registry=r)

    def watch_pool(self, pool: SandboxPool) -> None:
        """Sandbox state gauges read the pool at scrape time."""
        self.sandboxes.labels("busy").set_function(lambda: pool.busy)
        self.sandboxes.labels("idle").set_function(lambda: pool.idle)
        self.queue_depth.set_function(lambda: pool.waiting)
        self.outage.set_function(lambda: float(pool.in_outage))

    # PoolListener hooks
    def container_started(self, seconds: float) -> None:
        self.container_starts.inc()
        self.container_start_seconds.observe(seconds)

    def container_retired(self, reason: str) -> None:
        self.container_recycles.labels(reason).inc()
        if reason in ("crashed", "unresponsive"):
            self.container_crashes.inc()

    def job_finished(self, queue_wait_s: float, run_s: float) -> None:
        self.queue_wait.observe(queue_wait_s)
        self.program_seconds.observe(run_s)

    def sandbox_error(self, detail: str) -> None:
        self.sandbox_errors.inc()

    def compiled(self, language: str, compiled: Compiled) -> None:
        self.compiles.labels(language, "ok" if compiled.ok else "error").inc()
        self.compile_seconds.labels(language).observe(compiled.wall_time_s)

    def checker_failed(self, language: str, reason: str) -> None:
        self.checker_failures.labels(language=language, reason=reason).inc()

    def binary_cache(self, language: str, hit: bool) -> None:
        self.binary_cache_lookups.labels(language, "hit" if hit else "miss").inc()

    def program_done(self, result: ProgramResult, language: str = "python") -> None:
        self.programs.labels(result.verdict.value, language).inc()
        for test in result.tests:
            self.tests.labels(test.verdict.value, language).inc()
            if test.wall_time_s:
                self.test_seconds.observe(test.wall_time_s)
