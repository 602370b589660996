"""C++, Java and JavaScript beside Python: right answers pass, wrong ones fail, a program that
does not compile gets COMPILE_ERROR (reward 0), a program is compiled once for all its tests
and an identical source is not compiled again; and, per language, the attacks of
`test_sandbox_attacks.py` fail the same way (each leaves the next job on its container clean).

The pure tests (registry, binary cache, validation, protocol, verdicts) need no Docker; the
others share two pools per module (two containers, and one for "the next job on the same
container"), so the compilers' cost is paid once per program.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import docker
import pytest
import pytest_asyncio

from codereward.v1 import reward_pb2 as pb
from reward_api import types as api
from reward_server.config import ServerConfig
from reward_server.convert import to_completion_result
from reward_server.errors import InvalidRequest
from reward_server.validation import validate
from sandboxes import languages
from sandboxes.binaries import BinaryCache, cache_key
from sandboxes.config import SandboxConfig
from sandboxes.pool import SandboxPool, build_job
from sandboxes.runner import build
from sandboxes.runner.protocol import Compiled, Job, JobLimits, JobTest, Result, TestReport
from sandboxes.runner.verdict import Observed, command_ended
from sandboxes.types import AssertTest, IoTest, Limits, Problem, ProgramResult, ScoringMode, TestResult, Verdict

from .helpers import assert_nothing_left, assert_pool_healthy

F = TypeVar("F", bound=Callable[..., Any])


def in_sandbox(test: F) -> F:
    """A Docker test on this module's pools (one event loop for the module)."""
    return pytest.mark.docker(pytest.mark.asyncio(loop_scope="module")(test))  # type: ignore[no-any-return]


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip()


LANGS = ("cpp", "java", "javascript")
ADD = {
    "cpp": src("""
        #include <bits/stdc++.h>
        using namespace std;
        int main() { long long a, b; cin >> a >> b; cout << a + b << "\\n"; }
    """),
    "java": src("""
        import java.util.*;
        public class Main {
            public static void main(String[] args) {
                Scanner in = new Scanner(System.in);
                System.out.println(in.nextLong() + in.nextLong());
            }
        }
    """),
    "javascript": 'const [a, b] = require("fs").readFileSync(0, "utf8").trim().split(/\\s+/).map(BigInt);\nconsole.log(String(a + b));\n',
}
WRONG_ADD = {
    "cpp": '#include <cstdio>\nint main() { long long a, b; scanf("%lld %lld", &a, &b); printf("%lld\\n", a - b); }\n',
    "java": "public class Main { public static void main(String[] x) { var s = new java.util.Scanner(System.in); System.out.println(s.nextLong() - s.nextLong()); } }\n",
    "javascript": 'const [a, b] = require("fs").readFileSync(0, "utf8").trim().split(/\\s+/).map(Number);\nconsole.log(a - b);\n',
}


def add_problem(language: str, n: int = 3, **limits: Any) -> Problem:
    tests = tuple(IoTest(f"{i} {i * 7 + 1}\n", f"{i * 8 + 1}\n") for i in range(n))
    return Problem(id=f"add-{language}", language=language, tests=tests, limits=Limits(**limits))


# -- pure: the registry, the cache, validation, the protocol, verdicts ------------------------


def test_a_language_is_one_entry_with_what_the_image_and_the_runner_need() -> None:
    assert {"python", "cpp", "java", "javascript"} <= set(languages.LANGUAGES)
    assert languages.get("") is languages.get("python")
    for language in languages.LANGUAGES.values():
        assert language.packages and language.source
        if language.name != "python":
            assert language.test_kinds == ("io",) and language.run, language
        if language.compiled:
            assert language.artefacts and language.compile_cpu_s > 0 and language.compile_memory_mb > 0
    cpp = languages.get("cpp")
    assert {"-std=gnu++17", "-O2"} <= set(cpp.compile) and cpp.executable == "main"
    assert languages.image_packages() == sorted({"python3", "g++", "openjdk-17-jdk-headless", "nodejs"})
    assert languages.get("java").run_argv("/tmp/build", 200)[-3:] == ["-cp", "/tmp/build", "Main"]
    assert "-Xmx200m" in languages.get("java").run_argv("/tmp/build", 200)


def test_the_binary_cache_is_keyed_by_language_source_and_flags_and_bounded() -> None:
    cpp, java = languages.get("cpp"), languages.get("java")
    assert cache_key(cpp, "x") != cache_key(java, "x") and cache_key(cpp, "x") != cache_key(cpp, "y")
    assert cache_key(cpp, "x") != cache_key(dataclasses.replace(cpp, compile=(*cpp.compile, "-O3")), "x")
    assert cache_key(cpp, "x") != cache_key(dataclasses.replace(cpp, compile_cpu_s=1.0), "x")  # a limit can fail a compile
    cache = BinaryCache(max_entries=2, max_bytes=100)
    ok = Compiled(True, files=(("main", b"a" * 40),))
    for key in ("a", "b", "c"):
        cache.put(("cpp", key, ""), ok)
    assert len(cache) == 2 and cache.get(("cpp", "a", "")) is None and cache.get(("cpp", "c", "")) is ok
    assert cache.stats.hits == 1 and cache.stats.misses == 1 and cache.stats.evictions == 1
    cache.get(("cpp", "b", ""))  # b is now the most recently used: c goes first
    cache.put(("cpp", "d", ""), Compiled(True, files=(("main", b"d" * 50),)))
    assert cache.get(("cpp", "c", "")) is None and cache.get(("cpp", "b", "")) is ok and cache.bytes == 90
    cache.put(("cpp", "huge", ""), Compiled(True, files=(("main", b"h" * 101),)))  # larger than the cache: not kept
    assert cache.get(("cpp", "huge", "")) is None and cache.bytes == 90
    failed = Compiled(False, detail="main.cpp:1: error")
    cache.put(("cpp", "bad", ""), failed)
    assert cache.get(("cpp", "bad", "")) is failed
    cache.put(("cpp", "b", ""), failed)  # a source that compiled once keeps its binary
    assert cache.get(("cpp", "b", "")) is ok
    cache.put(("cpp", "slow", ""), Compiled(False, detail="the compiler ran past its wall-clock limit", cacheable=False))
    assert cache.get(("cpp", "slow", "")) is None  # the machine had a say: tried again next time
    cpp_checker = cache_key(cpp, "x", (("testlib.h", b"#pragma once"),))
    assert cpp_checker != cache_key(cpp, "x") and cpp_checker != cache_key(cpp, "x", (("testlib.h", b"// other"),))


def request(language: str, *tests: pb.TestCase, **problem: Any) -> pb.ScoreRequest:
    return pb.ScoreRequest(
        problem=pb.Problem(id="p", language=language, tests=list(tests), **problem), completions=[pb.Completion(id="0", code="x")]
    )


IO = pb.TestCase(io=pb.IoTest(stdin="1 2\n", expected_stdout="3\n"))


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (request("cpp", IO, pb.TestCase(assert_code="assert True")), "problem.tests[1].assert_code: a cpp problem takes io tests only"),
        (request("java", pb.TestCase(call=pb.CallTest(args_json="[]", expected_json="1"))), "problem.tests[0].call: a java problem"),
        (request("cpp", IO, setup_code="import math"), "problem.setup_code: Python only"),
        (request("javascript", IO, entry_point="main"), "problem.entry_point: Python only"),
        (request("cpp", IO, program_names=["X"]), "problem.program_names: Python only"),
        (request("rust", IO), "problem.language: 'rust' is not supported; use one of 'python', 'cpp', 'java', 'javascript'"),
    ],
    ids=["assert", "call", "setup", "entry_point", "program_names", "unknown"],
)
def test_validation_names_the_field_a_language_cannot_take(req: pb.ScoreRequest, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(req, ServerConfig(), SandboxConfig())
    assert str(caught.value).startswith(message), caught.value


def test_io_problems_in_every_language_are_accepted_and_become_jobs() -> None:
    for language in LANGS:
        validate(request(language, IO, IO), ServerConfig(), SandboxConfig())
        job = build_job(add_problem(language), ADD[language], Limits(1.0, 64, 1024), False)
        assert job.language == language and all(t.kind == "io" for t in job.tests)
    with pytest.raises(ValueError, match="can only be judged by io tests, not assert"):
        build_job(Problem(id="p", language="cpp", tests=(AssertTest("pass"),)), "", Limits(1.0, 64, 1024), False)


def test_artefacts_and_compile_outcomes_cross_the_protocol_intact() -> None:
    binary = bytes(range(256)) * 10
    job = Job("src", (JobTest("io", stdin="1"),), JobLimits(1.0, 64, 100), language="cpp", artefact=(("main", binary),), compile_cpu_s=3.0)
    back = Job.from_message(job.to_message(7))
    assert back.artefact == (("main", binary),) and back.language == "cpp" and back.compile_cpu_s == 3.0
    assert Job.from_message(Job("src", (), JobLimits(1.0, 64, 100)).to_message(1)).artefact is None
    compiled = Compiled(True, "", (("A.class", b"\xca\xfe"), ("Main.class", binary)), 0.5, 0.7)
    result = Result(3, (TestReport(None, "3\n"),), compiled=compiled)
    assert Result.from_message(result.to_message()).compiled == compiled


def test_the_contract_has_compile_error_with_reward_zero() -> None:
    assert pb.Verdict.Value("COMPILE_ERROR") == 10
    assert api.Verdict.from_pb(10) is api.Verdict.COMPILE_ERROR
    result = ProgramResult.from_tests((TestResult(Verdict.COMPILE_ERROR, 0.0, "main.cpp:1:1: error"),) * 2)
    assert result.verdict is Verdict.COMPILE_ERROR
    assert result.reward(ScoringMode.ALL_OR_NOTHING) == 0.0 and result.reward(ScoringMode.FRACTION) == 0.0  # not masked
    message = to_completion_result("0", result, ScoringMode.FRACTION, False)
    assert message.HasField("reward") and message.reward == 0.0 and message.verdict == 10


def test_metrics_are_labelled_by_language() -> None:
    from prometheus_client import generate_latest

    from reward_server.metrics import Metrics

    from .helpers import parse_metrics

    metrics = Metrics()
    metrics.program_done(ProgramResult.from_tests((TestResult(Verdict.COMPILE_ERROR),)), "cpp")
    metrics.program_done(ProgramResult.from_tests((TestResult(Verdict.PASSED),)))
    metrics.compiled("cpp", Compiled(False, "error", (), 0.1, 0.2))
    metrics.binary_cache("cpp", hit=True)
    samples = parse_metrics(generate_latest(metrics.registry).decode())
    assert samples['codereward_programs_total{language="cpp",verdict="COMPILE_ERROR"}'] == 1
    assert samples['codereward_tests_total{language="python",verdict="PASSED"}'] == 1
    assert samples['codereward_compiles_total{language="cpp",outcome="error"}'] == 1
    assert samples['codereward_compile_duration_seconds_count{language="cpp"}'] == 1
    assert samples['codereward_binary_cache_lookups_total{language="cpp",result="hit"}'] == 1


def exited(code: int) -> int:
    return code << 8


def test_verdicts_of_a_command_from_what_the_runner_saw() -> None:
    obs = Observed(0.1, 0.1, 1.0, 4.0)
    assert command_ended(obs, exited(0), False, b"3\n", b"", b"").output == "3\n"
    assert command_ended(obs, exited(3), False, b"3\n", b"boom", b"").verdict is Verdict.RUNTIME_ERROR
    assert command_ended(obs, signal.SIGSEGV, False, b"", b"", b"").verdict is Verdict.RUNTIME_ERROR
    assert command_ended(obs, signal.SIGXCPU, False, b"", b"", b"").verdict is Verdict.TIMEOUT
    assert command_ended(obs, signal.SIGKILL, True, b"", b"", b"").verdict is Verdict.MEMORY_LIMIT
    bad_alloc = b"terminate called after throwing an instance of 'std::bad_alloc'"
    assert command_ended(obs, signal.SIGABRT, False, b"", bad_alloc, b"", ("std::bad_alloc",)).verdict is Verdict.MEMORY_LIMIT
    assert command_ended(obs, signal.SIGABRT, False, b"", bad_alloc, b"").verdict is Verdict.RUNTIME_ERROR
    failed = command_ended(obs, exited(127), False, b"", b"", b'{"exec_failed": "main: ETXTBSY"}')
    assert failed.verdict is Verdict.SANDBOX_ERROR and "could not start" in failed.detail
    assert command_ended(Observed(0.1, 2.0, 1.0, 4.0), exited(0), False, b"3\n", b"", b"").verdict is Verdict.TIMEOUT


def test_a_compile_error_detail_holds_the_first_errors_within_4_kib() -> None:
    cpp = languages.get("cpp")
    stderr = b"main.cpp:1:1: error: first\n" + b"main.cpp:9:9: error: later\n" * 1000
    detail = build.compile_detail(cpp, TestReport(Verdict.RUNTIME_ERROR, None), b"", stderr)
    assert detail.startswith("main.cpp:1:1: error: first") and len(detail.encode()) <= 4096
    timed_out = build.compile_detail(cpp, TestReport(Verdict.TIMEOUT, None), b"", b"")
    assert timed_out == f"the compiler ran past its limit ({cpp.compile_cpu_s:g} s of CPU time)"


# -- in the sandbox ------------------------------------------------------------------------------


def config(image: str, workers: int) -> SandboxConfig:
    return SandboxConfig(
        image=image, workers=workers, default_limits=Limits(time_limit_s=1.0, memory_limit_mb=128, output_limit_bytes=64 * 1024)
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(sandbox_image: str, docker_client: docker.DockerClient) -> AsyncIterator[SandboxPool]:
    async with SandboxPool(config(sandbox_image, 2), client=docker_client) as sandbox_pool:
        yield sandbox_pool


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def single_pool(sandbox_image: str, docker_client: docker.DockerClient) -> AsyncIterator[SandboxPool]:
    """One container: consecutive jobs land on the same one."""
    async with SandboxPool(config(sandbox_image, 1), client=docker_client) as sandbox_pool:
        yield sandbox_pool


async def assert_clean(pool: SandboxPool, language: str) -> None:
    """Every container still gives right answers, in this language and in Python."""
    results = await asyncio.gather(*(pool.run(add_problem(language), ADD[language]) for _ in range(2 * pool.config.workers)))
    assert all(r.verdict is Verdict.PASSED for r in results), results
    await assert_pool_healthy(pool)


@in_sandbox
@pytest.mark.parametrize("language", LANGS)
async def test_right_answers_pass_and_wrong_ones_fail(pool: SandboxPool, language: str) -> None:
    right, wrong = await asyncio.gather(
        pool.run(add_problem(language), ADD[language]), pool.run(add_problem(language), WRONG_ADD[language])
    )
    assert right.verdict is Verdict.PASSED and right.reward(ScoringMode.ALL_OR_NOTHING) == 1.0, right
    assert wrong.verdict is Verdict.FAILED and wrong.reward(ScoringMode.FRACTION) == 0.0, wrong
    assert "expected" in wrong.tests[0].detail


COMPILE_ERRORS = {
    "cpp": (
        "#include <bits/stdc++.h>\nint main() {\n    return undeclared_name;\n}\n",
        "main.cpp:3:12: error: ‘undeclared_name’ was not declared",
    ),
    "java": (
        'public class Main {\n    public static void main(String[] a) { int x = "text"; }\n}\n',
        "Main.java:2: error: incompatible types",
    ),
}


@in_sandbox
@pytest.mark.parametrize("language", list(COMPILE_ERRORS))
async def test_a_compile_error_is_its_own_verdict_with_the_compilers_message_and_reward_zero(pool: SandboxPool, language: str) -> None:
    code, message = COMPILE_ERRORS[language]
    compiles = pool.compiles
    result = await pool.run(add_problem(language), code)
    assert result.verdict is Verdict.COMPILE_ERROR and result.reward(ScoringMode.FRACTION) == 0.0, result
    assert all(t.verdict is Verdict.COMPILE_ERROR and message in t.detail for t in result.tests), result.tests[0].detail
    assert pool.compiles == compiles + 1
    again = await pool.run(add_problem(language), code)  # the same source fails the same way: not compiled again
    assert again.verdict is Verdict.COMPILE_ERROR and again.tests[0].detail == result.tests[0].detail and pool.compiles == compiles + 1


@in_sandbox
async def test_a_program_is_compiled_once_for_all_its_tests_and_identical_sources_reuse_it(pool: SandboxPool) -> None:
    code = ADD["cpp"].replace("int main()", "// compiled once\nint main()")
    compiles, hits = pool.compiles, pool.binaries.stats.hits
    first = await pool.run(add_problem("cpp", n=20), code)
    assert first.verdict is Verdict.PASSED and first.passed == 20
    assert pool.compiles == compiles + 1  # one compile, twenty runs
    again = await asyncio.gather(*(pool.run(add_problem("cpp", n=5), code) for _ in range(4)))  # other requests, both containers
    assert all(r.verdict is Verdict.PASSED for r in again)
    assert pool.compiles == compiles + 1 and pool.binaries.stats.hits == hits + 4
    other = await pool.run(add_problem("cpp", n=2), code + "// another source\n")
    assert other.verdict is Verdict.PASSED and pool.compiles == compiles + 2


@in_sandbox
async def test_identical_sources_arriving_together_are_compiled_once(pool: SandboxPool) -> None:
    """Single flight: four requests with one new source at the same time (both containers
    idle) give one compile; the other three wait for it and run its binary."""
    code = ADD["cpp"].replace("int main()", "// four at once\nint main()")
    compiles = pool.compiles
    results = await asyncio.gather(*(pool.run(add_problem("cpp", n=3), code) for _ in range(4)))
    assert all(r.verdict is Verdict.PASSED for r in results), results
    assert pool.compiles == compiles + 1


@in_sandbox
async def test_the_compiler_runs_as_the_programs_uid_under_its_own_limits(pool: SandboxPool, monkeypatch: pytest.MonkeyPatch) -> None:
    shadow = await pool.run(add_problem("cpp", n=1), '#include "/etc/shadow"\nint main() {}\n')
    assert shadow.verdict is Verdict.COMPILE_ERROR and "Permission denied" in shadow.tests[0].detail, shadow.tests[0].detail
    flood = "".join(f"int v{i} = undeclared_{i};\n" for i in range(5000)) + "int main() {}\n"
    flooded = await pool.run(add_problem("cpp", n=1), flood)
    assert flooded.verdict is Verdict.COMPILE_ERROR and flooded.tests[0].detail.startswith("the compiler wrote more than")
    assert "main.cpp:1:10: error: ‘undeclared_0’" in flooded.tests[0].detail
    cpp = languages.get("cpp")
    spin = src("""
        #include <cstdio>
        constexpr long long spin() { long long s = 0; for (int i = 0; i < 200000; i++) for (int j = 0; j < 200000; j++) s += i ^ j; return s; }
        constexpr long long value = spin();
        int main() { std::printf("%lld\\n", value); }
    """)
    monkeypatch.setitem(languages.LANGUAGES, "cpp", dataclasses.replace(cpp, compile_cpu_s=1.0))
    slow = await pool.run(add_problem("cpp", n=1), spin)
    assert slow.verdict is Verdict.COMPILE_ERROR and "ran past its limit (1 s of CPU time)" in slow.tests[0].detail, slow.tests[0].detail
    monkeypatch.setitem(languages.LANGUAGES, "cpp", dataclasses.replace(cpp, compile_memory_mb=48))
    small = await pool.run(add_problem("cpp", n=1), ADD["cpp"])  # 48 MB of address space is too little for cc1plus
    assert small.verdict is Verdict.COMPILE_ERROR and "PCH allocation failure" in small.tests[0].detail, small
    monkeypatch.setitem(languages.LANGUAGES, "cpp", cpp)
    assert (await pool.run(add_problem("cpp", n=1, memory_limit_mb=32), ADD["cpp"])).verdict is Verdict.PASSED  # the run's limit is its own


@in_sandbox
async def test_deep_recursion_has_the_memory_limit_as_its_stack_in_cpp(pool: SandboxPool) -> None:
    deep = src("""
        #include <cstdio>
        int depth(int n) { volatile char frame[64]; frame[0] = (char)n; return n ? depth(n - 1) + (frame[0] & 1) : 0; }
        int main() { int n; std::scanf("%d", &n); std::printf("%d\\n", depth(n)); }
    """)
    result = await pool.run(Problem(id="deep", language="cpp", tests=(IoTest("500000\n", "250000\n"),)), deep)
    assert result.verdict is Verdict.PASSED, result


# -- attacks, per language --------------------------------------------------------------------

ESCAPES = {
    # Raw syscalls through inline assembly: no libc wrapper stands between the program and the kernel.
    "cpp": src("""
        #include <bits/stdc++.h>
        #include <dirent.h>
        #include <fcntl.h>
        #include <netinet/in.h>
        #include <sched.h>
        #include <sys/stat.h>
        #include <sys/syscall.h>
        #include <sys/wait.h>
        #include <unistd.h>
        static long raw(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0) {
            long ret;
            register long r10 asm("r10") = d;
            register long r8 asm("r8") = e;
            asm volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
            return ret;
        }
        static void check(const char* what, bool worked) { std::printf("%s %s\\n", what, worked ? "WORKED" : "denied"); }
        static bool opens(const char* path, long flags) {
            long fd = raw(SYS_openat, AT_FDCWD, (long)path, flags, 0644);
            if (fd >= 0) raw(SYS_close, fd);
            return fd >= 0;
        }
        int main() {
            check("setuid", raw(SYS_setuid, 0) == 0 || raw(SYS_setresuid, 0, 0, 0) == 0 || raw(SYS_getuid) == 0);
            bool signalled = false, traced = false;
            long me = raw(SYS_getpid);
            DIR* proc = opendir("/proc");
            while (dirent* entry = readdir(proc)) {
                long pid = std::atol(entry->d_name);
                if (pid <= 0 || pid == me) continue;
                signalled |= raw(SYS_kill, pid, SIGKILL) == 0;
                traced |= raw(SYS_ptrace, 16 /* PTRACE_ATTACH */, pid, 0, 0) == 0;
            }
            check("kill-others", signalled);
            check("ptrace-others", traced);
            check("read-shadow", opens("/etc/shadow", O_RDONLY));
            check("read-host-file", opens(HOST_FILE, O_RDONLY));
            check("read-runner-memory", opens("/proc/1/mem", O_RDONLY) || opens("/proc/1/environ", O_RDONLY));
            check("docker-socket", opens("/var/run/docker.sock", O_RDWR));
            long s = raw(SYS_socket, AF_INET, SOCK_STREAM, 0);
            sockaddr_in to{};
            to.sin_family = AF_INET; to.sin_port = htons(53); to.sin_addr.s_addr = htonl(0x01010101);
            check("network", s >= 0 && raw(SYS_connect, s, (long)&to, sizeof to) == 0);
            check("write-etc", opens("/etc/passwd", O_WRONLY) || opens("/etc/pwned", O_WRONLY | O_CREAT));
            check("write-root", opens("/pwned", O_WRONLY | O_CREAT) || opens("/opt/codereward/runner/main.py", O_WRONLY));
            check("write-own-binary", opens("/tmp/build/main", O_WRONLY) || opens("/tmp/build/pwned", O_WRONLY | O_CREAT) || opens("/proc/self/exe", O_WRONLY));
            check("namespaces", raw(SYS_unshare, CLONE_NEWUSER) == 0 || raw(SYS_unshare, CLONE_NEWNS) == 0);
            check("mount", raw(SYS_mount, (long)"none", (long)"/tmp", (long)"tmpfs", 0, 0) == 0);
            check("chroot", raw(SYS_chroot, (long)"/tmp") == 0);
            {   // a program copied to the tmpfs and executed from there
                std::ifstream in("/bin/true", std::ios::binary);
                std::ofstream("/tmp/job/true", std::ios::binary) << in.rdbuf();
                chmod("/tmp/job/true", 0755);
                pid_t child = fork();
                if (child == 0) { execl("/tmp/job/true", "true", (char*)nullptr); _exit(1); }
                int status = 1;
                waitpid(child, &status, 0);
                check("exec-from-tmp", WIFEXITED(status) && WEXITSTATUS(status) == 0);
            }
        }
    """),
    "java": src("""
        import java.io.*;
        import java.net.*;
        import java.nio.file.*;
        public class Main {
            static void check(String what, boolean worked) { System.out.println(what + (worked ? " WORKED" : " denied")); }
            interface Attempt { void run() throws Exception; }
            static boolean works(Attempt attempt) { try { attempt.run(); return true; } catch (Exception e) { return false; } }
            public static void main(String[] args) throws Exception {
                long me = ProcessHandle.current().pid();
                boolean signalled = false;
                for (ProcessHandle p : ProcessHandle.allProcesses().toList()) if (p.pid() != me && p.destroyForcibly()) signalled = true;
                check("kill-others", signalled);
                check("kill-via-shell", new ProcessBuilder("sh", "-c", "kill -9 1").start().waitFor() == 0);
                check("read-shadow", works(() -> Files.readAllBytes(Path.of("/etc/shadow"))));
                check("read-host-file", works(() -> Files.readAllBytes(Path.of(HOST_FILE))));
                check("read-runner-memory", works(() -> Files.readAllBytes(Path.of("/proc/1/environ"))));
                check("network", works(() -> { try (Socket s = new Socket()) { s.connect(new InetSocketAddress("1.1.1.1", 53), 500); } }));
                check("write-etc", works(() -> Files.writeString(Path.of("/etc/pwned"), "x")));
                check("write-root", works(() -> Files.writeString(Path.of("/opt/codereward/runner/main.py"), "#", StandardOpenOption.APPEND)));
                check("write-own-classes", works(() -> Files.writeString(Path.of("/tmp/build/Main.class"), "x", StandardOpenOption.APPEND))
                    || works(() -> Files.writeString(Path.of("/tmp/build/Pwned.class"), "x")));
            }
        }
    """),
    "javascript": src("""
        const fs = require("fs"), cp = require("child_process"), net = require("net");
        const lines = [];
        const check = (what, worked) => lines.push(`${what} ${worked ? "WORKED" : "denied"}`);
        const works = (attempt) => { try { attempt(); return true; } catch (e) { return false; } };
        let signalled = false;
        for (const name of fs.readdirSync("/proc")) {
            const pid = Number(name);
            if (pid > 0 && pid !== process.pid && works(() => process.kill(pid, "SIGKILL"))) signalled = true;
        }
        check("kill-others", signalled);
        check("kill-via-shell", cp.spawnSync("sh", ["-c", "kill -9 1"]).status === 0);
        check("read-shadow", works(() => fs.readFileSync("/etc/shadow")));
        check("read-host-file", works(() => fs.readFileSync(HOST_FILE)));
        check("read-runner-memory", works(() => fs.readFileSync("/proc/1/environ")));
        check("write-etc", works(() => fs.writeFileSync("/etc/pwned", "x")));
        check("write-root", works(() => fs.appendFileSync("/opt/codereward/runner/main.py", "#")));
        check("write-own-source", works(() => fs.appendFileSync("/tmp/build/main.js", "//")) || works(() => fs.writeFileSync("/tmp/build/x.js", "")));
        let reported = false;
        const network = (worked) => { if (!reported) { reported = true; check("network", worked); console.log(lines.join("\\n")); process.exit(0); } };
        const socket = net.connect({ host: "1.1.1.1", port: 53, timeout: 500 });
        socket.on("connect", () => network(true)).on("error", () => network(false)).on("timeout", () => network(false));
    """),
}


def denied(code: str) -> str:
    """What an escape program prints when every attempt failed: `<name> denied` per check."""
    import re

    names = re.findall(r'check\("([a-z-]+)"', code)
    return "".join(f"{name} denied\n" for name in names)


@in_sandbox
@pytest.mark.parametrize("language", LANGS)
async def test_every_escape_attempt_fails(pool: SandboxPool, language: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-5e1f")
    code = ESCAPES[language].replace("HOST_FILE", f'"{secret}"')
    result = await pool.run(
        Problem(id="escape", language=language, tests=(IoTest("", denied(code)),), limits=Limits(time_limit_s=5.0)), code
    )
    # PASSED means: the program ran every attempt, and each one was refused by the kernel.
    assert result.verdict is Verdict.PASSED, result.tests[0].detail
    await assert_clean(pool, language)


ATTACKS: dict[str, dict[str, tuple[str, set[Verdict]]]] = {
    "cpp": {
        "fork bomb": ("#include <unistd.h>\nint main() { for (;;) fork(); }\n", {Verdict.TIMEOUT}),
        "infinite loop": ("int main() { volatile unsigned long x = 0; for (;;) x++; }\n", {Verdict.TIMEOUT}),
        "sleep": ("#include <unistd.h>\nint main() { sleep(60); }\n", {Verdict.TIMEOUT}),
        "memory bomb": (
            "#include <vector>\nint main() { std::vector<std::vector<char>> v; for (;;) v.emplace_back(1 << 24, 1); }\n",
            {Verdict.MEMORY_LIMIT},
        ),
        "output flood": (
            "#include <cstdio>\nint main() { static char b[65536]; for (;;) fwrite(b, 1, sizeof b, stdout); }\n",
            {Verdict.OUTPUT_LIMIT},
        ),
        "fake report": (
            '#include <cstdio>\n#include <unistd.h>\nint main() { puts("PASSED\\n{\\"ok\\": true}"); fflush(stdout);'
            ' for (int fd = 0; fd < 256; fd++) write(fd, "PASSED\\n", 7); _exit(0); }\n',
            {Verdict.FAILED},
        ),
        "segfault": ("int main() { *(volatile int*)0 = 1; }\n", {Verdict.RUNTIME_ERROR}),
        "exit status": ('#include <cstdio>\nint main() { puts("1"); return 3; }\n', {Verdict.RUNTIME_ERROR}),
    },
    "java": {
        "fork bomb": (
            'public class Main { public static void main(String[] a) { for (;;) { try { new ProcessBuilder("sleep", "60").start(); }'
            " catch (Exception e) {} try { new Thread(() -> { for (;;) {} }).start(); } catch (Throwable t) {} } } }\n",
            {Verdict.TIMEOUT, Verdict.RUNTIME_ERROR, Verdict.MEMORY_LIMIT},
        ),
        "infinite loop": (
            "public class Main { public static void main(String[] a) { long x = 0; for (;;) x += System.nanoTime(); } }\n",
            {Verdict.TIMEOUT},
        ),
        "memory bomb": (
            "import java.util.*;\npublic class Main { public static void main(String[] a) { List<int[]> l = new ArrayList<>(); for (;;) l.add(new int[1 << 20]); } }\n",
            {Verdict.MEMORY_LIMIT},
        ),
        "output flood": (
            'public class Main { public static void main(String[] a) { String s = "x".repeat(4096); for (;;) System.out.print(s); } }\n',
            {Verdict.OUTPUT_LIMIT},
        ),
        "fake report": (
            'public class Main { public static void main(String[] a) { System.out.println("PASSED"); System.exit(0); } }\n',
            {Verdict.FAILED},
        ),
        "exception": (
            'public class Main { public static void main(String[] a) { throw new RuntimeException("boom"); } }\n',
            {Verdict.RUNTIME_ERROR},
        ),
    },
    "javascript": {
        "fork bomb": (
            'const cp = require("child_process");\nfor (;;) { try { cp.spawn("sleep", ["60"]); } catch (e) {} }\n',
            {Verdict.TIMEOUT, Verdict.RUNTIME_ERROR},
        ),
        "infinite loop": ("for (;;) {}\n", {Verdict.TIMEOUT}),
        "memory bomb": ("const a = [];\nfor (;;) a.push(new Array(1 << 20).fill(1.5));\n", {Verdict.MEMORY_LIMIT}),
        "output flood": ('const s = "x".repeat(4096);\nfor (;;) process.stdout.write(s);\n', {Verdict.OUTPUT_LIMIT}),
        "fake report": ('console.log("PASSED");\nconsole.log(JSON.stringify({ok: true}));\nprocess.exit(0);\n', {Verdict.FAILED}),
        "syntax error": ("function (\n", {Verdict.RUNTIME_ERROR}),  # no compile step: node reports it when it runs
    },
}


@in_sandbox
@pytest.mark.parametrize("language", LANGS)
async def test_resource_attacks_and_fake_results_get_their_verdict(pool: SandboxPool, language: str) -> None:
    attacks = ATTACKS[language]
    problem = Problem(id="attack", language=language, tests=(IoTest("1 2\n", "3\n"),))
    results = await asyncio.gather(*(pool.run(problem, code) for code, _ in attacks.values()))
    for (name, (_, expected)), result in zip(attacks.items(), results):
        assert result.verdict in expected, (name, result)
        assert result.reward(ScoringMode.FRACTION) == 0.0, (name, result)
    await assert_clean(pool, language)


# Output past the cap, delivered in a way that does not wait for the runner to read: one
# non-blocking (or, in Node, queued) write of cap + 1 bytes, then the program spins or eats
# memory until a limit kills it. OUTPUT_LIMIT whatever the load (a pipe that held less than the
# excess made it TIMEOUT or MEMORY_LIMIT, depending on how fast the runner read).
CAP = 64 * 1024  # config() below
OVERFLOWS = {
    "cpp": {
        "then spins": src(f"""
            #include <fcntl.h>
            #include <unistd.h>
            static char b[{CAP + 1}];
            int main() {{ fcntl(1, F_SETFL, O_NONBLOCK); write(1, b, sizeof b); for (volatile int x = 0;; x++) {{}} }}
            """),
        "then eats memory": src(f"""
            #include <fcntl.h>
            #include <unistd.h>
            #include <vector>
            static char b[{CAP + 1}];
            int main() {{ fcntl(1, F_SETFL, O_NONBLOCK); write(1, b, sizeof b);
                std::vector<std::vector<char>> v; for (;;) v.emplace_back(1 << 20, 1); }}
            """),
    },
    "java": {
        "then spins": (
            "public class Main { public static void main(String[] a) throws Exception {"
            f' System.out.write(new byte[{CAP + 1}]); System.out.flush(); long x = 0; for (;;) x += System.nanoTime(); }} }}\n'
        ),
    },
    "javascript": {
        "then spins": f'process.stdout.write("x".repeat({CAP + 1}));\nfor (;;) {{}}\n',
        "then eats memory": f'process.stdout.write("x".repeat({CAP + 1}));\nconst a = [];\nfor (;;) a.push(new Array(1 << 20).fill(1.5));\n',
        "in a flood": 'const s = "x".repeat(4096);\nfor (;;) process.stdout.write(s);\n',
    },
}


@in_sandbox
@pytest.mark.parametrize("language", LANGS)
async def test_output_past_the_cap_is_output_limit_however_it_is_written(pool: SandboxPool, language: str) -> None:
    problem = Problem(id="overflow", language=language, tests=(IoTest("", "x\n"),))
    programs = OVERFLOWS[language]
    results = await asyncio.gather(*(pool.run(problem, code) for code in programs.values() for _ in range(3)))
    for name, result in zip((name for name in programs for _ in range(3)), results):
        assert result.verdict is Verdict.OUTPUT_LIMIT, (name, result)
    await assert_clean(pool, language)


# Honest programs that write their answer through /dev/stdout (a file opened anew, with O_TRUNC:
# stdout is a memfd, so the runner takes what the file holds when the program ends).
DEV_STDOUT = {
    "python": "import sys\nn = int(input())\nwith open('/dev/stdout', 'w') as f:\n    f.write(f'{2 * n}\\n')\n",
    "cpp": '#include <cstdio>\nint main() { int n; scanf("%d", &n); FILE* f = fopen("/dev/stdout", "w"); fprintf(f, "%d\\n", 2 * n); }\n',
    "java": (
        "import java.io.*;\nimport java.util.*;\npublic class Main { public static void main(String[] a) throws Exception {"
        " int n = new Scanner(System.in).nextInt(); try (PrintStream p = new PrintStream(new FileOutputStream(\"/dev/stdout\")))"
        " { p.println(2 * n); } } }\n"
    ),
    "javascript": "const fs = require('fs');\nconst n = parseInt(fs.readFileSync('/dev/stdin', 'utf8'));\nfs.writeFileSync('/dev/stdout', `${2 * n}\\n`);\n",
}


@in_sandbox
@pytest.mark.parametrize("language", ("python", *LANGS))
async def test_an_answer_written_through_dev_stdout_is_the_output(pool: SandboxPool, language: str) -> None:
    problem = Problem(id="double", language=language, tests=(IoTest("21\n", "42\n"), IoTest("5\n", "10\n")))
    result = await pool.run(problem, DEV_STDOUT[language])
    assert result.verdict is Verdict.PASSED, result


@in_sandbox
async def test_stdout_reopened_after_the_runner_looked_is_read_again(pool: SandboxPool) -> None:
    # The runner reads "x\n" at a poll; the program then truncates its stdout by reopening it
    # and writes its answer: the output is the answer alone (what a file holds; with a pipe the
    # "x" would have stayed), never the stale "x\n" followed by the tail of the answer.
    program = "import time\nprint('x', flush=True)\ntime.sleep(0.3)\nn = int(input())\nopen('/dev/stdout', 'w').write(f'{2 * n}\\n')\n"
    result = await pool.run(Problem(id="double", language="python", tests=(IoTest("21\n", "42\n"),)), program)
    assert result.verdict is Verdict.PASSED, result


DAEMONS = {
    "cpp": src("""
        #include <csignal>
        #include <cstdio>
        #include <unistd.h>
        int main() {
            if (fork() == 0) {
                setsid();
                if (fork() == 0)
                    for (;;) {  // tamper with whatever runs next
                        kill(-1, SIGKILL);
                        kill(1, SIGKILL);
                        if (FILE* f = std::fopen("/tmp/job/tampered", "w")) std::fclose(f);
                        usleep(1000);
                    }
                _exit(0);
            }
            std::puts("0");
        }
    """),
    "java": (
        'public class Main { public static void main(String[] a) throws Exception { new ProcessBuilder("sh", "-c",'
        ' "(while true; do kill -9 -1 1; touch /tmp/job/tampered; sleep 0.01; done) >/dev/null 2>&1 &").start().waitFor();'
        " System.out.println(0); } }\n"
    ),
    "javascript": (
        'require("child_process").spawn("sh", ["-c", "while true; do kill -9 -1 1; touch /tmp/job/tampered; sleep 0.01; done"],'
        ' {detached: true, stdio: "ignore"}).unref();\nconsole.log(0);\n'
    ),
}


@in_sandbox
@pytest.mark.parametrize("language", LANGS)
async def test_a_background_process_does_not_survive_into_the_next_job(single_pool: SandboxPool, language: str) -> None:
    result = await single_pool.run(Problem(id="daemon", language=language, tests=(IoTest("1 2\n", "3\n"),)), DAEMONS[language])
    assert result.verdict in (Verdict.FAILED, Verdict.RUNTIME_ERROR), result  # its daemon may kill its own test
    await assert_nothing_left(single_pool)
    assert (await single_pool.run(add_problem(language), ADD[language])).verdict is Verdict.PASSED


@in_sandbox
async def test_a_cached_binary_is_what_the_next_run_of_its_source_executes(single_pool: SandboxPool) -> None:
    """The artefact comes from the host's cache on every run: a program that tries to replace the
    binary in its container (its own, the only one there) changes nothing for the next job."""
    good = ADD["cpp"].replace("int main()", "// cached\nint main()")
    assert (await single_pool.run(add_problem("cpp"), good)).verdict is Verdict.PASSED
    vandal = src("""
        #include <cstdio>
        #include <fcntl.h>
        int main() {
            int changed = 0;
            const char* paths[] = {"/tmp/build/main", "/proc/self/exe"};
            for (const char* path : paths)
                if (std::FILE* f = std::fopen(path, "r+")) { std::fputs("garbage", f); changed += std::fclose(f) == 0; }
            int self = open("/proc/self/exe", O_RDONLY);  // it runs from a memfd, sealed against writes
            std::printf("%d\\n%d\\n", changed, (fcntl(self, F_GET_SEALS) & F_SEAL_WRITE) != 0);
        }
    """)
    vandalised = await single_pool.run(Problem(id="v", language="cpp", tests=(IoTest("", "0\n1\n"),)), vandal)
    assert vandalised.verdict is Verdict.PASSED, vandalised
    hits = single_pool.binaries.stats.hits
    assert (await single_pool.run(add_problem("cpp"), good)).verdict is Verdict.PASSED and single_pool.binaries.stats.hits == hits + 1


@in_sandbox
async def test_a_cpp_group_over_the_wire(sandbox_image: str) -> None:
    """The contract end to end: language "cpp", COMPILE_ERROR (10) with reward 0, metrics by language."""
    import urllib.request

    from reward_api.client import AsyncRewardClient
    from reward_server.server import RewardServer

    from .helpers import parse_metrics

    server = RewardServer(ServerConfig(port=0, metrics_port=0, grace_s=5.0, sandbox=config(sandbox_image, 1)))
    await server.start()
    try:
        problem = api.make_problem("add", [api.io_test("1 2\n", "3\n"), api.io_test("40 2\n", "42\n")], language="cpp")
        broken = COMPILE_ERRORS["cpp"][0]
        async with AsyncRewardClient(f"127.0.0.1:{server.port}", retry_timeout_s=2.0) as client:
            group = await client.score_group(problem, [ADD["cpp"], WRONG_ADD["cpp"], broken, ADD["cpp"]], mode="FRACTION")
            again = await client.score_group(problem, [ADD["cpp"]])
        assert [r.verdict for r in group.results] == [api.Verdict.PASSED, api.Verdict.FAILED, api.Verdict.COMPILE_ERROR, api.Verdict.PASSED]
        assert group.rewards == [1.0, 0.0, 0.0, 1.0] and group.raw is not None and group.raw.results[2].verdict == 10
        assert "error: ‘undeclared_name’ was not declared" in group.results[2].tests[0].detail
        assert again.results[0].verdict is api.Verdict.PASSED
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        samples = parse_metrics(urllib.request.urlopen(url, timeout=5).read().decode())
        assert samples['codereward_programs_total{language="cpp",verdict="COMPILE_ERROR"}'] == 1
        assert samples['codereward_compiles_total{language="cpp",outcome="ok"}'] == 2  # the right and the wrong program, once each
        assert samples['codereward_binary_cache_lookups_total{language="cpp",result="hit"}'] == 1  # the second request's
    finally:
        await server.stop(grace_s=0)
