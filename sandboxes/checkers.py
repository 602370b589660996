"""Checkers: programs that decide whether an io test's output is right, for problems with more
than one right answer (testlib's checkers, open-r1 Codeforces' `generated_checker`). Pure: the
pool (`pool.py`) runs the jobs made here.

How a problem with a checker is judged:

1. The program's job runs as for any io problem; no expected output enters its container.
2. For each test the program ran to completion, the checker runs as the program of another
   job: one io test per checked test, its input, the program's output and the expected answer
   as read-only files in its directory, their names as arguments in the protocol's order. That
   job is a job like any other, on a container where nothing of the program is left (after
   each job the runner kills every process but its own and empties the writable places, or the
   container is replaced), so the program can reach neither the checker nor the answer.
3. A test is settled by the checker's exit status (TESTLIB: testlib's codes) or by what it
   prints (OPEN_R1: `1` accepted, `0` not).

Whose fault a failing checker is. Before it sees a program's output, the checker runs on each
test with the expected answer as the output (it must accept it) and, where the answer is not
blank, with an empty output (it must not accept that), once per (checker, test) while the
cache keeps it, in jobs that hold no program's output (the compile of a C++ checker happens
there too). A checker that fails these is broken on that test, whatever a program prints: the
test is SANDBOX_ERROR (no reward; `codereward_checker_failures_total`). A checker that passed
them and then fails on a program's output (crashes, runs out of its limits, testlib's `_fail`)
was broken by that output: a wrong answer, counted too (testlib calls unreadable output a
presentation error), so that no program can turn a wrong answer into SANDBOX_ERROR (masked:
better for a policy than a 0) by printing what makes a checker fall over.
"""

from __future__ import annotations

import enum
import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from .runner.protocol import Files, Job, JobLimits, JobTest, TestReport, Verdict
from .types import Checker, CheckerProtocol, Limits

# The files a checker reads, in the order of its arguments. open-r1's names are kept: a
# generated checker may open them by name.
FILES: dict[CheckerProtocol, tuple[str, str, str]] = {  # (input, the program's output, the answer)
    CheckerProtocol.TESTLIB: ("input.txt", "output.txt", "answer.txt"),
    CheckerProtocol.OPEN_R1: ("input.txt", "solution_output.txt", "correct_output.txt"),
}
ARGUMENTS: dict[CheckerProtocol, tuple[int, int, int]] = {  # positions in FILES, as the checker is called
    CheckerProtocol.TESTLIB: (0, 1, 2),  # checker input output answer
    CheckerProtocol.OPEN_R1: (0, 2, 1),  # checker input correct_output solution_output
}

# testlib's exit codes (testlib.h: _ok, _wa, _pe, _fail, _dirt, _points, _unexpected_eof), and
# its partially-correct codes (_pc(n) exits PC_BASE_EXIT_CODE + n). testlib's own base is 0, where
# _pc(0) would exit 0 and be taken for accepted: a C++ checker is compiled with a base of 50.
TESTLIB_CODES = {1: "wrong answer", 2: "presentation error", 4: "wrong output format (extra data)", 7: "partial points", 8: "unexpected end of output"}
TESTLIB_FAIL = 3
PC_BASE_EXIT_CODE = 50
CPP_PRELUDE = f"#define PC_BASE_EXIT_CODE {PC_BASE_EXIT_CODE}\n#line 1\n"


class Said(enum.Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # a wrong answer, as the checker says
    FAILED = "failed"  # the checker says it failed (testlib's _fail): never the program's fault
    CRASHED = "crashed"  # the checker did not answer (crash, limits, an answer outside its protocol)
    UNAVAILABLE = "unavailable"  # its sandbox failed (infrastructure: never the program's fault, nor the checker's)
    SKIPPED = "skipped"  # not run: an earlier test failed and the program's job was fail_fast


@dataclass(frozen=True)
class Answer:
    said: Said
    detail: str = ""


def source(checker: Checker) -> str:
    """What is compiled or run: the checker's code, after CPP_PRELUDE for C++."""
    return CPP_PRELUDE + checker.code if checker.language == "cpp" else checker.code


def checker_test(checker: Checker, stdin: str, output: str, answer: str) -> JobTest:
    names = FILES[checker.protocol]
    contents = (stdin, output, answer)
    files = tuple((name, text.encode("utf-8", errors="surrogateescape")) for name, text in zip(names, contents))
    return JobTest("io", args=tuple(names[i] for i in ARGUMENTS[checker.protocol]), files=files)


def checker_job(
    checker: Checker, tests: list[JobTest], limits: Limits, artefact: Files | None, headers: Files, compile_limits: tuple[float, int], fail_fast: bool = False
) -> Job:
    """`fail_fast`: the job stops at the first output the checker does not accept (the rest SKIPPED)."""
    return Job(
        program=source(checker),
        tests=tuple(tests),
        limits=JobLimits(limits.time_limit_s, limits.memory_limit_mb, limits.output_limit_bytes),
        language=checker.language,
        artefact=artefact,
        compile_cpu_s=compile_limits[0],
        compile_memory_mb=compile_limits[1],
        compile_files=headers,
        fail_fast=fail_fast,
    )


def read(protocol: CheckerProtocol, report: TestReport) -> Answer:
    """What the checker said in one test of its job."""
    if report.verdict is None:  # it exited 0
        if protocol is CheckerProtocol.TESTLIB:
            return Answer(Said.ACCEPTED)
        printed = (report.output or "").strip()
        if printed == "1":
            return Answer(Said.ACCEPTED)
        if printed == "0":
            return Answer(Said.REJECTED, "the checker printed 0")
        return Answer(Said.CRASHED, f"the checker printed {printed[:50]!r}, neither 1 nor 0")
    if report.verdict is Verdict.RUNTIME_ERROR and report.exit_code is not None and protocol is CheckerProtocol.TESTLIB:
        message = _message(report.detail)
        code = report.exit_code
        if code == TESTLIB_FAIL:
            return Answer(Said.FAILED, f"the checker failed: {message}" if message else "the checker failed (exit 3)")
        name = TESTLIB_CODES.get(code) or (f"partially correct ({code - PC_BASE_EXIT_CODE})" if code >= PC_BASE_EXIT_CODE else "")
        if name:
            return Answer(Said.REJECTED, f"{name}: {message}" if message else name)
    if report.verdict is Verdict.SANDBOX_ERROR:
        return Answer(Said.UNAVAILABLE, f"the checker's sandbox failed: {report.detail}")
    if report.verdict is Verdict.SKIPPED:
        return Answer(Said.SKIPPED)
    return Answer(Said.CRASHED, f"the checker did not answer ({report.verdict.value}): {report.detail}")


def _message(detail: str) -> str:
    """The checker's own words: what it wrote on stderr (after the runner's first line)."""
    return detail.partition("\n")[2].strip()[:1000]


@dataclass(frozen=True)
class Sanity:
    """How the checker took a test's expected answer as the output, and an empty output."""

    answer: Answer
    empty: Answer | None = None  # None: the expected answer is blank, so empty may be right

    @property
    def problem(self) -> str:
        """Why the checker cannot be trusted on this test ("" when it can)."""
        if self.answer.said is Said.UNAVAILABLE:
            return self.answer.detail
        if self.answer.said is not Said.ACCEPTED:
            return f"the checker does not accept the expected answer ({self.answer.said.value}): {self.answer.detail}"
        if self.empty is not None and self.empty.said is Said.ACCEPTED:
            return "the checker accepts an empty output where the expected answer is not blank (a checker for another protocol?)"
        return ""

    @property
    def keep(self) -> bool:
        """Kept unless the checker did not answer on the expected answer: a crash or a limit may
        have been the machine's. (On an empty output, not answering is as good as rejecting.)"""
        return self.answer.said not in (Said.CRASHED, Said.UNAVAILABLE) and (self.empty is None or self.empty.said is not Said.UNAVAILABLE)


def settle(answer: Answer, sanity: Sanity) -> tuple[Verdict, str]:
    """A checked test's verdict from what the checker said of the program's output, once it is
    known whether the checker can be trusted on this test (`sanity`)."""
    if sanity.problem:
        return Verdict.SANDBOX_ERROR, sanity.problem[:4096]
    if answer.said is Said.ACCEPTED:
        return Verdict.PASSED, ""
    if answer.said is Said.UNAVAILABLE:
        return Verdict.SANDBOX_ERROR, answer.detail[:4096]
    if answer.said is Said.SKIPPED:
        return Verdict.SKIPPED, ""
    if answer.said is Said.REJECTED:
        return Verdict.FAILED, answer.detail[:4096]
    return Verdict.FAILED, f"the checker could not judge this output: {answer.detail}"[:4096]


def sanity_key(checker: Checker, stdin: str, answer: str) -> str:
    digest = hashlib.sha256()
    for part in (checker.protocol.value, checker.language, checker.code, stdin, answer):
        data = part.encode("utf-8", errors="surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


class SanityCache:
    """How a checker took a test's expected answer (`Sanity`): a fact about the checker and the
    test alone, kept for the next program on the same problem. Bounded, least recently used out."""

    def __init__(self, max_entries: int = 65536) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Sanity] = OrderedDict()

    def get(self, key: str) -> Sanity | None:
        sanity = self._entries.get(key)
        if sanity is not None:
            self._entries.move_to_end(key)
        return sanity

    def put(self, key: str, sanity: Sanity) -> None:
        if self.max_entries <= 0 or not sanity.keep:
            return
        self._entries[key] = sanity
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def chunks(tests: list[JobTest], max_bytes: int) -> list[list[JobTest]]:
    """Consecutive tests in jobs of at most `max_bytes` of files each (at least one test a job),
    so that no job's frame grows with a problem's size."""
    out: list[list[JobTest]] = []
    size = 0
    for test in tests:
        weight = sum(len(data) for _, data in test.files)
        if not out or size + weight > max_bytes:
            out.append([])
            size = 0
        out[-1].append(test)
        size += weight
    return out
