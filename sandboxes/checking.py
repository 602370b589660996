"""Running a problem's checker for the pool (`pool.py`): the probes that decide whether the
checker can be trusted on each test, and the checks of a program's outputs, as jobs on the
pool's containers, ahead of the programs waiting for one. The rules (protocols, whose fault a
failing checker is) are `checkers.py`'s.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Any

from . import checkers, languages
from .binaries import BinaryCache
from .runner.protocol import Files, JobTest, TestReport
from .types import Checker, IoTest, Problem, Verdict

if TYPE_CHECKING:
    from .pool import SandboxPool

CHECKER_JOB_BYTES = 8 * 1024 * 1024  # files (inputs, outputs, answers) in one checker job


class CheckerRuns:
    """The pool's checker runs and what they keep: the sanity cache, the probes in flight, and
    the checkers' binaries (a cache of their own, which no program can evict)."""

    def __init__(self, pool: SandboxPool) -> None:
        self.pool = pool
        config = pool.config
        self.sanity = checkers.SanityCache()
        self._probing: dict[str, asyncio.Future[Any]] = {}  # a problem's probe set -> its outcome, while probing
        self.binaries = BinaryCache(max(1, config.binary_cache_entries // 16), config.binary_cache_mb << 18)
        # Headers a compiled checker may include (testlib.h), written next to its source.
        self.headers: Files = (("testlib.h", config.testlib_bytes()),) if config.testlib_header else ()

    async def check(self, problem: Problem, reports: tuple[TestReport, ...], fail_fast: bool) -> dict[int, tuple[Verdict, str]]:
        """The checker's verdicts (`checkers.py`), by test index. Whether the checker can be
        trusted on each io test is learnt first, for every io test of the problem whatever
        this program did (`_sanity`); an untrusted test is SANDBOX_ERROR for every program.
        Then the outputs of the tests the program ran to completion, in jobs of at most
        CHECKER_JOB_BYTES of files."""
        checker = problem.checker
        assert checker is not None
        language = languages.get(checker.language)
        io = {i: t for i, t in enumerate(problem.tests) if isinstance(t, IoTest)}
        sanity, failure = await self._sanity(checker, language, io)
        verdicts: dict[int, tuple[Verdict, str]] = {}
        if failure is None:
            for i in io:
                if sanity[i].problem:
                    verdicts[i] = (Verdict.SANDBOX_ERROR, sanity[i].problem[:4096])
                    self.pool.listener.checker_failed(language.name, "untrusted")
            done = [i for i in io if i not in verdicts and reports[i].verdict is None]
            outputs = [checkers.checker_test(checker, io[i].stdin, reports[i].output or "", io[i].expected_stdout) for i in done]
            said, failure = await self._run(checker, language, outputs, fail_fast=fail_fast)
        if failure is not None:
            detail, reason = failure
            self.pool.listener.checker_failed(language.name, reason)
            return {i: (Verdict.SANDBOX_ERROR, detail[:4096]) for i in io}
        for i, answer in zip(done, said):
            verdicts[i] = checkers.settle(answer, sanity[i])
            if answer.said in (checkers.Said.FAILED, checkers.Said.CRASHED):
                self.pool.listener.checker_failed(language.name, f"{answer.said.value}_on_output")
        return verdicts

    async def _sanity(
        self, checker: Checker, language: languages.Language, io: dict[int, IoTest]
    ) -> tuple[dict[int, checkers.Sanity], tuple[str, str] | None]:
        """How the checker takes each test's expected answer and an empty output: from the
        sanity cache, else from probe jobs that hold no program's output. Single flight: the
        programs of a group that arrive together wait for one set of probes and share it."""
        keys = {i: checkers.sanity_key(checker, t.stdin, t.expected_stdout) for i, t in io.items()}
        flight_key = hashlib.sha256("".join(keys.values()).encode()).hexdigest()
        if (flight := self._probing.get(flight_key)) is not None:
            return await asyncio.shield(flight)
        sanity = {i: known for i, key in keys.items() if (known := self.sanity.get(key)) is not None}
        unknown = [i for i in io if i not in sanity]
        if not unknown:
            return sanity, None
        flight = asyncio.get_running_loop().create_future()
        self._probing[flight_key] = flight
        outcome: tuple[dict[int, checkers.Sanity], tuple[str, str] | None] = (sanity, ("the checker's probes were cancelled", "sandbox"))
        try:
            # (test, its output is the expected answer: True; an empty output: False)
            probes = [(i, True) for i in unknown] + [(i, False) for i in unknown if io[i].expected_stdout.strip()]
            jobs = [checkers.checker_test(checker, io[i].stdin, io[i].expected_stdout if answer else "", io[i].expected_stdout) for i, answer in probes]
            said, failure = await self._run(checker, language, jobs)
            if failure is None:
                answers = {(i, answer): a for (i, answer), a in zip(probes, said)}
                for i in unknown:
                    sanity[i] = checkers.Sanity(answers[(i, True)], answers.get((i, False)))
                    self.sanity.put(keys[i], sanity[i])
            outcome = (sanity, failure)
            return outcome
        finally:
            del self._probing[flight_key]
            flight.set_result(outcome)

    async def _run(
        self, checker: Checker, language: languages.Language, tests: list[JobTest], fail_fast: bool = False
    ) -> tuple[list[checkers.Answer], tuple[str, str] | None]:
        """What the checker said in each of `tests`, in jobs of at most CHECKER_JOB_BYTES of
        files, each ahead of programs waiting for a container; or why it could not say
        (detail, metric reason): it does not compile, or its sandbox failed."""
        said: list[checkers.Answer] = []
        code = checkers.source(checker)
        headers = self.headers if language.compiled else ()
        limits = self.pool.config.checker_limits
        for chunk in checkers.chunks(tests, CHECKER_JOB_BYTES):
            if fail_fast and any(answer.said is not checkers.Said.ACCEPTED for answer in said):
                said += [checkers.Answer(checkers.Said.SKIPPED)] * len(chunk)
                continue
            async with self.pool._compile_once(language, code, headers, self.binaries) as cached:
                if cached is not None and not cached.ok:
                    return said, (f"the problem's checker does not compile: {cached.detail}", "compile_error")
                compile_limits = (language.compile_cpu_s, language.compile_memory_mb)
                job = checkers.checker_job(checker, chunk, limits, cached.files if cached is not None else None, headers, compile_limits, fail_fast)
                reply, detail = await self.pool._execute(job, self.pool.deadline(job, language, compiles=cached is None), first=True)
                if reply is not None:
                    self.pool._remember_compile(language, code, reply, headers, self.binaries)
            if reply is not None and reply.compiled is not None and not reply.compiled.ok:
                return said, (f"the problem's checker does not compile: {reply.compiled.detail}", "compile_error")
            if reply is not None and reply.fault(len(chunk)):
                detail, reply = reply.fault(len(chunk)), None
            if reply is None:
                return said, (f"the checker's sandbox failed: {detail}", "sandbox")
            said += [checkers.read(checker.protocol, report) for report in reply.tests]
        return said, None
