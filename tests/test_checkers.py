"""Checkers (sandboxes/checkers.py): a problem's own program judges each io test's output, for
problems with more than one right answer. Real containers: the program's job, then the checker's
job, through SandboxPool; and the rules that decide whose fault a failing checker is."""

from __future__ import annotations

import asyncio
import dataclasses
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import docker
import pytest
from prometheus_client import CollectorRegistry

from codereward.v1 import reward_pb2 as pb
from reward_api.client import AsyncRewardClient
from reward_api.types import Verdict as ApiVerdict
from reward_api.types import assert_test, io_test, make_problem
from reward_server.config import ServerConfig
from reward_server.convert import to_problem
from reward_server.errors import InvalidRequest
from reward_server.metrics import Metrics
from reward_server.server import RewardServer
from reward_server.validation import validate
from sandboxes import checkers
from sandboxes.checkers import Answer, Said
from sandboxes.config import SandboxConfig
from sandboxes.pool import SandboxPool
from sandboxes.runner.protocol import Job, JobLimits, TestReport
from sandboxes.types import Checker, CheckerProtocol, IoTest, Limits, Problem, ScoringMode, Verdict


def code(text: str) -> str:
    return textwrap.dedent(text).lstrip()


# -- the rules, without a container -----------------------------------------------------------


def report(verdict: Verdict | None, output: str | None = None, detail: str = "", exit_code: int | None = None) -> TestReport:
    return TestReport(verdict, output, detail=detail, exit_code=exit_code)


@pytest.mark.parametrize(
    ("test", "said"),
    [
        (report(None, ""), Said.ACCEPTED),
        (report(Verdict.RUNTIME_ERROR, detail="exited with status 1\n1 + 2 is not 4", exit_code=1), Said.REJECTED),
        (report(Verdict.RUNTIME_ERROR, detail="exited with status 2", exit_code=2), Said.REJECTED),
        (report(Verdict.RUNTIME_ERROR, detail="exited with status 7", exit_code=7), Said.REJECTED),  # _points
        (report(Verdict.RUNTIME_ERROR, detail="exited with status 8", exit_code=8), Said.REJECTED),
        (report(Verdict.RUNTIME_ERROR, detail="exited with status 50", exit_code=50), Said.REJECTED),  # _pc(0), never accepted
        (report(Verdict.RUNTIME_ERROR, detail="exited with status 3\nanswer file broken", exit_code=3), Said.FAILED),
        (report(Verdict.RUNTIME_ERROR, detail="exited with status 42", exit_code=42), Said.CRASHED),
        (report(Verdict.RUNTIME_ERROR, detail="ValueError: invalid literal"), Said.CRASHED),  # an exception: no exit code
        (report(Verdict.TIMEOUT, detail="CPU time limit exceeded"), Said.CRASHED),
        (report(Verdict.SANDBOX_ERROR, detail="container died"), Said.UNAVAILABLE),
        (report(Verdict.SKIPPED), Said.SKIPPED),
    ],
)
def test_what_a_testlib_checker_says(test: TestReport, said: Said) -> None:
    assert checkers.read(CheckerProtocol.TESTLIB, test).said is said


def test_a_testlib_rejection_carries_the_checkers_own_words() -> None:
    answer = checkers.read(CheckerProtocol.TESTLIB, report(Verdict.RUNTIME_ERROR, detail="exited with status 1\n1 + 2 is not 4", exit_code=1))
    assert answer.detail == "wrong answer: 1 + 2 is not 4"


@pytest.mark.parametrize(
    ("test", "said"),
    [
        (report(None, "1\n"), Said.ACCEPTED),
        (report(None, "0\n"), Said.REJECTED),
        (report(None, "0\n0\n1\n"), Said.CRASHED),  # one line per case: its last word is not its verdict
        (report(None, ""), Said.CRASHED),
        (report(None, "yes"), Said.CRASHED),
        (report(Verdict.RUNTIME_ERROR, detail="exited with status 1", exit_code=1), Said.CRASHED),  # exit codes are not its protocol
    ],
)
def test_what_an_open_r1_checker_says(test: TestReport, said: Said) -> None:
    assert checkers.read(CheckerProtocol.OPEN_R1, test).said is said


ACCEPTED, REJECTED = Answer(Said.ACCEPTED), Answer(Said.REJECTED, "wrong answer")
TRUSTED = checkers.Sanity(ACCEPTED, REJECTED)


@pytest.mark.parametrize(
    ("answer", "sanity", "verdict"),
    [
        (ACCEPTED, TRUSTED, Verdict.PASSED),
        (REJECTED, TRUSTED, Verdict.FAILED),
        (Answer(Said.CRASHED, "ValueError"), TRUSTED, Verdict.FAILED),  # the program's output broke it
        (Answer(Said.FAILED, "the checker failed"), TRUSTED, Verdict.FAILED),  # _fail on this output only
        (ACCEPTED, checkers.Sanity(ACCEPTED, None), Verdict.PASSED),  # a blank answer: empty output may be right
        (ACCEPTED, checkers.Sanity(REJECTED, REJECTED), Verdict.SANDBOX_ERROR),  # rejects its own answer
        (REJECTED, checkers.Sanity(Answer(Said.CRASHED, "TIMEOUT"), REJECTED), Verdict.SANDBOX_ERROR),
        (ACCEPTED, checkers.Sanity(Answer(Said.FAILED, "exit 3"), REJECTED), Verdict.SANDBOX_ERROR),
        (ACCEPTED, checkers.Sanity(ACCEPTED, ACCEPTED), Verdict.SANDBOX_ERROR),  # takes anything: a checker of the other protocol
        (Answer(Said.UNAVAILABLE, "its sandbox failed"), TRUSTED, Verdict.SANDBOX_ERROR),  # infrastructure, never a 0
        (Answer(Said.SKIPPED), TRUSTED, Verdict.SKIPPED),
    ],
)
def test_whose_fault_a_failing_checker_is(answer: Answer, sanity: checkers.Sanity, verdict: Verdict) -> None:
    assert checkers.settle(answer, sanity)[0] is verdict


def test_a_checkers_files_and_arguments_cross_to_the_runner() -> None:
    test = checkers.checker_test(Checker("python", "pass", CheckerProtocol.OPEN_R1), "4\n", "0 4\n", "1 3\n")
    assert test.args == ("input.txt", "correct_output.txt", "solution_output.txt")
    job = Job("pass", (test,), JobLimits(1.0, 64, 1024), compile_files=(("testlib.h", b"#pragma once\n"),))
    again = Job.from_message(job.to_message(7))
    assert again.tests[0].args == test.args and again.compile_files == job.compile_files
    assert dict(again.tests[0].files) == {"input.txt": b"4\n", "solution_output.txt": b"0 4\n", "correct_output.txt": b"1 3\n"}


def test_the_sanity_cache_forgets_a_checker_that_did_not_answer() -> None:
    cache = checkers.SanityCache(max_entries=2)
    cache.put("crashed", checkers.Sanity(Answer(Said.CRASHED, "TIMEOUT"), REJECTED))  # the machine's fault, maybe: not kept
    for key in ("a", "b", "c"):
        cache.put(key, TRUSTED)
    assert cache.get("crashed") is None and cache.get("a") is None and cache.get("c") == TRUSTED


def test_checker_jobs_are_cut_by_the_bytes_of_their_files() -> None:
    checker = Checker("python", "pass")
    tests = [checkers.checker_test(checker, "x" * size, "", "") for size in (600, 300, 300, 2000, 10)]
    assert [len(chunk) for chunk in checkers.chunks(tests, 1000)] == [2, 1, 1, 1]


def test_a_cpp_checkers_partial_codes_start_at_50() -> None:
    assert checkers.source(Checker("cpp", "int main() {}")) == "#define PC_BASE_EXIT_CODE 50\n#line 1\nint main() {}"
    assert checkers.source(Checker("python", "pass")) == "pass"


# -- real containers -------------------------------------------------------------------------------

# "Print two non-negative integers that add up to n": many right answers.
SUMS = tuple(IoTest(f"{n}\n", f"{n - 1} 1\n") for n in (4, 10, 7))
SUM_PY = "n = int(input())\nprint(0, n)\n"  # right, and never the expected answer
SUM_WRONG_PY = "n = int(input())\nprint(1, n)\n"

TESTLIB_PY = code("""
    import sys
    n = int(open(sys.argv[1]).read())
    words = open(sys.argv[2]).read().split()
    open(sys.argv[3]).read()
    if len(words) != 2 or not all(w.isdigit() for w in words):
        print("expected two non-negative integers", file=sys.stderr)
        sys.exit(2)
    a, b = map(int, words)
    if a + b != n:
        print(f"{a} + {b} is not {n}", file=sys.stderr)
        sys.exit(1)
""")

OPEN_R1_PY = code("""
    import sys
    n = int(open(sys.argv[1]).read())
    a, b = map(int, open(sys.argv[3]).read().split())
    print(1 if a >= 0 and b >= 0 and a + b == n else 0)
""")


def sums(checker: Checker) -> Problem:
    return Problem(id="two-that-add-up", tests=SUMS, checker=checker)


@pytest.fixture
async def metered(fast_config: SandboxConfig, docker_client: docker.DockerClient) -> AsyncIterator[tuple[SandboxPool, CollectorRegistry]]:
    registry = CollectorRegistry()
    config = dataclasses.replace(fast_config, checker_limits=Limits(time_limit_s=1.0, memory_limit_mb=128, output_limit_bytes=65536))
    async with SandboxPool(config, client=docker_client, listener=Metrics(registry)) as pool:
        yield pool, registry


def failures(registry: CollectorRegistry, reason: str, language: str = "python") -> float:
    return registry.get_sample_value("codereward_checker_failures_total", {"language": language, "reason": reason}) or 0.0


@pytest.mark.docker
async def test_a_testlib_checker_accepts_any_right_answer_and_rejects_wrong_ones(metered: tuple[SandboxPool, CollectorRegistry]) -> None:
    pool, registry = metered
    problem = sums(Checker("python", TESTLIB_PY))
    right, wrong, garbage = [await pool.run(problem, program) for program in (SUM_PY, SUM_WRONG_PY, "print('lots of words here')")]
    assert right.verdict is Verdict.PASSED, right
    assert wrong.verdict is Verdict.FAILED and wrong.reward(ScoringMode.FRACTION) == 0.0
    assert "wrong answer: 1 + 4 is not 4" in wrong.tests[0].detail
    assert garbage.verdict is Verdict.FAILED and "presentation error" in garbage.tests[0].detail
    assert failures(registry, "untrusted") == 0


@pytest.mark.docker
async def test_a_program_that_fails_on_its_own_is_never_sent_to_the_checker(metered: tuple[SandboxPool, CollectorRegistry]) -> None:
    """The checker takes its answer and rejects an empty output, and fails (exit 3) on anything
    else: had it seen this program's tests, they would be FAILED and counted."""
    pool, registry = metered
    fussy = "import sys\nout, ans = (open(p).read() for p in sys.argv[2:4])\nsys.exit(0 if out == ans else 1 if not out else 3)\n"
    result = await pool.run(sums(Checker("python", fussy)), "raise SystemExit(5)")
    assert {t.verdict for t in result.tests} == {Verdict.RUNTIME_ERROR}, result
    assert failures(registry, "failed_on_output") == failures(registry, "untrusted") == 0


@pytest.mark.docker
async def test_an_open_r1_checker_gets_its_files_in_open_r1s_order(metered: tuple[SandboxPool, CollectorRegistry]) -> None:
    pool, _ = metered
    problem = sums(Checker("python", OPEN_R1_PY, CheckerProtocol.OPEN_R1))
    right, wrong = await pool.run(problem, SUM_PY), await pool.run(problem, SUM_WRONG_PY)
    assert right.verdict is Verdict.PASSED, right
    assert wrong.verdict is Verdict.FAILED and "printed 0" in wrong.tests[0].detail


ORDER_PY = code("""
    import sys
    contents = [open(name).read() for name in sys.argv[1:]]
    if contents[1] != contents[2]:
        print(repr(list(zip(sys.argv[1:], contents))), file=sys.stderr)
        sys.exit(1)
""")


@pytest.mark.docker
async def test_a_testlib_checker_is_called_with_input_output_answer(metered: tuple[SandboxPool, CollectorRegistry]) -> None:
    pool, _ = metered
    result = await pool.run(Problem(id="order", tests=(IoTest("4\n", "1 3\n"),), checker=Checker("python", ORDER_PY)), "print(0, 4)")
    assert result.tests[0].detail.endswith("[('input.txt', '4\\n'), ('output.txt', '0 4\\n'), ('answer.txt', '1 3\\n')]"), result


@pytest.mark.docker
async def test_a_checker_that_fails_by_itself_is_a_sandbox_error_and_counted(metered: tuple[SandboxPool, CollectorRegistry]) -> None:
    """Broken whatever a program prints: it fails (exit 3) or rejects on its own answer, or it
    accepts an empty output (here an open-r1 checker, which prints 1 or 0 and exits 0, sent as
    a testlib one)."""
    pool, registry = metered
    failing = await pool.run(sums(Checker("python", "import sys\nprint('jury answer broken', file=sys.stderr)\nsys.exit(3)\n")), SUM_PY)
    rejecting = await pool.run(sums(Checker("python", "print(0)\n", CheckerProtocol.OPEN_R1)), SUM_PY)
    misdeclared = await pool.run(sums(Checker("python", OPEN_R1_PY, CheckerProtocol.TESTLIB)), SUM_PY)  # reads the answer as the output
    for result in (failing, rejecting, misdeclared):
        assert result.verdict is Verdict.SANDBOX_ERROR and result.reward(ScoringMode.FRACTION) is None, result  # masked, never a 0
    assert "the checker does not accept the expected answer (failed): the checker failed: jury answer broken" in failing.tests[0].detail
    assert "the checker does not accept the expected answer (rejected)" in rejecting.tests[0].detail
    assert "accepts an empty output" in misdeclared.tests[0].detail
    assert failures(registry, "untrusted") == 3 * len(SUMS)
    assert registry.get_sample_value("codereward_sandbox_errors_total") == 3


@pytest.mark.docker
async def test_testlibs_fail_on_a_programs_output_alone_is_a_wrong_answer(metered: tuple[SandboxPool, CollectorRegistry]) -> None:
    """A checker that exits 3 (testlib's _fail) only on some outputs, having accepted its own
    answer: those outputs are wrong answers, never a masked error; counted for the operator."""
    pool, registry = metered
    fussy = TESTLIB_PY.replace("import sys\n", "import sys\nif 'jury' in open(sys.argv[2]).read():\n    sys.exit(3)\n", 1)
    result = await pool.run(sums(Checker("python", fussy)), "print('the jury is wrong')")
    assert result.verdict is Verdict.FAILED and "the checker could not judge this output: the checker failed" in result.tests[0].detail
    assert failures(registry, "failed_on_output") == len(SUMS) and failures(registry, "untrusted") == 0


@pytest.mark.docker
async def test_output_that_makes_a_sloppy_checker_crash_is_a_wrong_answer_not_a_masked_error(metered: tuple[SandboxPool, CollectorRegistry]) -> None:
    """The attack: a policy that prints what the checker cannot parse, hoping for SANDBOX_ERROR
    (no reward, so no penalty) instead of a 0. The checker accepts its own answer, so the crash
    is the output's doing."""
    pool, registry = metered
    sloppy = code("""
        import sys
        n = int(open(sys.argv[1]).read())
        a, b = map(int, open(sys.argv[2]).read().split())  # raises on anything else
        if a < 0 or b < 0 or a + b != n:
            sys.exit(1)
        if a == 0:
            while True:  # and spins on some outputs
                pass
    """)
    problem = sums(Checker("python", sloppy))
    for program in ("print('not numbers')", "print(0, int(input()))", "import sys\nsys.stdout.write('9' * 60000)"):
        result = await pool.run(problem, program)
        assert result.verdict is Verdict.FAILED and result.reward(ScoringMode.FRACTION) == 0.0, (program, result)
        assert "the checker could not judge this output" in result.tests[0].detail
    assert (await pool.run(problem, "n = int(input())\nprint(1, n - 1)")).verdict is Verdict.PASSED
    assert failures(registry, "untrusted") == 0 and failures(registry, "crashed_on_output") == 3 * len(SUMS)


@pytest.mark.docker
async def test_a_test_the_checker_is_broken_on_is_masked_for_every_program(metered: tuple[SandboxPool, CollectorRegistry]) -> None:
    """Trust is decided per test, whatever a program did: a program that crashes on the broken
    test is masked as one that prints is, so that printing anything buys nothing."""
    pool, registry = metered
    broken_on_10 = TESTLIB_PY.replace("import sys\n", "import sys\nif open(sys.argv[1]).read() == '10\\n':\n    sys.exit(1)\n", 1)
    problem = sums(Checker("python", broken_on_10))
    crashing = await pool.run(problem, "n = int(input())\nif n == 10:\n    raise SystemExit(1)\nprint(0, n)")
    printing = await pool.run(problem, "print(0, 0)")
    for result in (crashing, printing):
        assert [t.verdict for t in result.tests][1] is Verdict.SANDBOX_ERROR and result.verdict is Verdict.SANDBOX_ERROR, result
    assert crashing.tests[0].verdict is Verdict.PASSED and printing.tests[0].verdict is Verdict.FAILED


class Jobs(Metrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.jobs = 0

    def job_finished(self, queue_wait_s: float, run_s: float) -> None:
        super().job_finished(queue_wait_s, run_s)
        self.jobs += 1


@pytest.mark.docker
async def test_a_groups_programs_share_one_set_of_probes(fast_config: SandboxConfig, docker_client: docker.DockerClient) -> None:
    listener = Jobs(CollectorRegistry())
    async with SandboxPool(fast_config, client=docker_client, listener=listener) as pool:
        results = await asyncio.gather(*(pool.run(sums(Checker("python", TESTLIB_PY)), SUM_PY) for _ in range(4)))
    assert all(r.verdict is Verdict.PASSED for r in results)
    assert listener.jobs == 4 + 1 + 4  # the programs, one probe job for all of them, the checks of their outputs


@pytest.mark.docker
async def test_fail_fast_stops_the_checker_at_the_first_rejected_output(metered: tuple[SandboxPool, CollectorRegistry]) -> None:
    pool, _ = metered
    result = await pool.run(sums(Checker("python", TESTLIB_PY)), SUM_WRONG_PY, fail_fast=True)
    assert [t.verdict for t in result.tests] == [Verdict.FAILED, Verdict.SKIPPED, Verdict.SKIPPED], result


@pytest.mark.docker
async def test_a_checker_that_runs_out_of_time_on_its_own_answer_is_a_sandbox_error(metered: tuple[SandboxPool, CollectorRegistry]) -> None:
    pool, registry = metered
    result = await pool.run(Problem(id="spin", tests=(IoTest("4\n", "1 3\n"),), checker=Checker("python", "while True:\n    pass\n")), SUM_PY)
    assert result.verdict is Verdict.SANDBOX_ERROR and "TIMEOUT" in result.tests[0].detail
    assert failures(registry, "untrusted") == 1


SNOOP = code("""
    import glob, os
    found = []
    places = ["/tmp", "/dev/shm", "/var/tmp", "/run", "/root", "/home", "/opt"] + glob.glob("/proc/[0-9]*/cwd")
    for root in places:
        for path, dirs, files in os.walk(root):
            for name in files:
                try:
                    with open(os.path.join(path, name), errors="replace") as f:
                        found.append(f.read(4096))
                except OSError:
                    pass
    for name in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline") + glob.glob("/*.txt"):
        try:
            found.append(open(name, errors="replace").read())
        except OSError:
            pass
    secret = [text for text in found if "7f3a9c" in text]
    print(secret[0] if secret else "0 0")
""")


@pytest.mark.docker
async def test_the_program_cannot_read_the_answer_the_checker_gets(metered: tuple[SandboxPool, CollectorRegistry]) -> None:
    """The checker accepts the expected answer only: a program passes by finding it. It is in no
    file, process or directory the program's job can see."""
    pool, _ = metered
    exact = "import sys\nsys.exit(0 if open(sys.argv[2]).read() == open(sys.argv[3]).read() else 1)\n"
    problem = Problem(id="secret", tests=(IoTest("4\n", "7f3a9c 1 3\n"),), checker=Checker("python", exact))
    result = await pool.run(problem, SNOOP)
    assert result.verdict is Verdict.FAILED and result.tests[0].detail == "wrong answer", result  # it looked everywhere, and ended


LINGER = code("""
    import os, time
    if os.fork() == 0:
        os.setsid()
        for _ in range(400):  # rewrite what a later checker reads, for ~4 s
            for name in ("output.txt", "answer.txt"):
                try:
                    with open("/tmp/job/" + name, "w") as f:
                        f.write("0 4\\n")
                except OSError:
                    pass
            time.sleep(0.01)
        os._exit(0)
    print("1 1")
""")


@pytest.mark.docker
async def test_a_process_the_program_leaves_behind_cannot_reach_the_checkers_files(
    fast_config: SandboxConfig, docker_client: docker.DockerClient
) -> None:
    """One container, so the checker's job lands where the program ran."""
    config = dataclasses.replace(fast_config, workers=1)
    exact = "import sys\nsys.exit(0 if open(sys.argv[2]).read() == open(sys.argv[3]).read() else 1)\n"
    problem = Problem(id="linger", tests=(IoTest("4\n", "0 4\n"),), checker=Checker("python", exact))
    async with SandboxPool(config, client=docker_client) as pool:
        result = await pool.run(problem, LINGER)
    assert result.verdict is Verdict.FAILED and result.tests[0].detail == "wrong answer", result


# A stand-in for testlib.h with its interface (registerTestlibCmd, inf/ouf/ans, quitf and the exit
# codes), so that a checker written against testlib compiles here: CI cannot download the real one.
TESTLIB_STANDIN = code("""
    #pragma once
    #include <cstdarg>
    #include <cstdio>
    #include <cstdlib>
    enum TResult { _ok = 0, _wa = 1, _pe = 2, _fail = 3 };
    [[noreturn]] inline void quitf(TResult result, const char* format, ...) {
        va_list args;
        va_start(args, format);
        std::vfprintf(stderr, format, args);
        va_end(args);
        std::exit(result);
    }
    struct InStream {
        std::FILE* file = nullptr;
        TResult on_error = _fail;
        long long readLong() {
            long long value;
            if (std::fscanf(file, "%lld", &value) != 1) quitf(on_error, "expected an integer");
            return value;
        }
    };
    inline InStream inf, ouf, ans;
    inline void registerTestlibCmd(int argc, char* argv[]) {
        if (argc < 4) quitf(_fail, "usage: checker input output answer");
        inf.file = std::fopen(argv[1], "r");
        ouf.file = std::fopen(argv[2], "r");
        ans.file = std::fopen(argv[3], "r");
        if (!inf.file || !ouf.file || !ans.file) quitf(_fail, "cannot open the files");
        ouf.on_error = _pe;
    }
""")

TESTLIB_CPP = code("""
    #include "testlib.h"
    int main(int argc, char* argv[]) {
        registerTestlibCmd(argc, argv);
        long long n = inf.readLong();
        long long a = ouf.readLong(), b = ouf.readLong();
        ans.readLong();
        if (a < 0 || b < 0 || a + b != n) quitf(_wa, "%lld + %lld is not %lld", a, b, n);
        quitf(_ok, "ok");
    }
""")


@pytest.mark.docker
async def test_a_cpp_checker_including_testlib_compiles_with_the_servers_header(
    fast_config: SandboxConfig, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    header = tmp_path / "testlib.h"
    header.write_text(TESTLIB_STANDIN)
    problem = sums(Checker("cpp", TESTLIB_CPP))
    registry = CollectorRegistry()
    async with SandboxPool(dataclasses.replace(fast_config, testlib_header=str(header)), client=docker_client) as pool:
        right, wrong, garbage = await asyncio.gather(*(pool.run(problem, program) for program in (SUM_PY, SUM_WRONG_PY, "print('x')")))
        compiles = pool.compiles
        again = await pool.run(problem, SUM_PY)
        assert pool.compiles == compiles == 1  # three programs at once, one compile of the checker (single flight); then cached
    async with SandboxPool(fast_config, client=docker_client, listener=Metrics(registry)) as pool:
        headless = await pool.run(problem, SUM_PY)
    assert right.verdict is again.verdict is Verdict.PASSED, right
    assert wrong.verdict is Verdict.FAILED and "1 + 4 is not 4" in wrong.tests[0].detail
    assert garbage.verdict is Verdict.FAILED and "presentation error" in garbage.tests[0].detail
    assert headless.verdict is Verdict.SANDBOX_ERROR and "testlib.h" in headless.tests[0].detail
    assert failures(registry, "compile_error", "cpp") == 1


# -- the contract ------------------------------------------------------------------------------


def a_testlib_checker(code: str, language: str = "python") -> pb.Checker:
    return pb.Checker(language=language, code=code, protocol=pb.Checker.TESTLIB)


def checked(checker: pb.Checker, tests: list[pb.TestCase] | None = None) -> pb.ScoreRequest:
    problem = make_problem("sums", tests or [io_test("4\n", "1 3\n")], checker=checker)
    return pb.ScoreRequest(problem=problem, completions=[pb.Completion(code="print(0, 4)")])


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (checked(a_testlib_checker("print(1)"), [assert_test("assert True")]), r"problem.tests\[0\]: a problem with a checker takes io tests only"),
        (checked(a_testlib_checker("x", language="cobol")), r"problem.checker.language: 'cobol' is not supported"),
        (checked(a_testlib_checker("  \n")), r"problem.checker.code: empty"),
        (checked(a_testlib_checker("def (:")), r"problem.checker.code: does not compile"),
        (checked(a_testlib_checker("x" * (ServerConfig().max_checker_bytes + 1))), r"problem.checker.code: \d+ bytes exceeds the limit"),
        (checked(pb.Checker(code="print(1)", protocol=7)), r"problem.checker.protocol: 7 is not a protocol"),  # type: ignore[arg-type]
        (checked(pb.Checker(code="print(1)")), r"problem.checker.protocol: unset; say how the checker answers: TESTLIB or OPEN_R1"),
    ],
)
def test_bad_checkers_are_refused_naming_the_field(request_: pb.ScoreRequest, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        validate(request_, ServerConfig(), SandboxConfig())


def test_the_contract_carries_a_checker_to_the_domain() -> None:
    problem = to_problem(checked(pb.Checker(language="cpp", code="int main() {}", protocol=pb.Checker.OPEN_R1)).problem)
    assert problem.checker == Checker("cpp", "int main() {}", CheckerProtocol.OPEN_R1)
    assert to_problem(make_problem("plain", [io_test("", "")])).checker is None


@pytest.mark.docker
async def test_a_checked_problem_scores_over_the_wire(fast_config: SandboxConfig) -> None:
    server = RewardServer(ServerConfig(port=0, metrics_port=0, grace_s=5.0, sandbox=fast_config))
    await server.start()
    try:
        async with AsyncRewardClient(f"127.0.0.1:{server.port}", retry_timeout_s=2.0) as client:
            problem = make_problem("sums", [io_test(t.stdin, t.expected_stdout) for t in SUMS], checker=a_testlib_checker(TESTLIB_PY))
            group = await client.score_group(problem, [SUM_PY, SUM_WRONG_PY, "print(", "print(0, int(input()) + 1)"], mode="FRACTION")
    finally:
        await server.stop(grace_s=0)
    assert group.rewards == [1.0, 0.0, 0.0, 0.0]
    assert [r.verdict for r in group.results] == [ApiVerdict.PASSED, ApiVerdict.FAILED, ApiVerdict.SYNTAX_ERROR, ApiVerdict.FAILED]
