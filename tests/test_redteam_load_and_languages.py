"""Attacks found by a red-team reading of the run-queue-delay wall clock and of the new languages
(C++, Java, JavaScript), each asserting that it fails. Every one of them was a hole when found:
SANDBOX_ERROR (masked: better for a policy than a 0) through a busy judge, an exception message
formatted by the program, or a binary the kernel refuses; a returned Fraction that held the
host's event loop; right Java programs and C++ compiles timed out by a loaded machine (only the
main thread's run-queue delay was read, then only the longest wait of one thread, where
processes wait one after another). Fixed in sandboxes/runner (judge._exception_text,
verdict.command_ended, Batch._waiting_s, TIMEOUT at the overload cap) and reward_api/codec.py
(MAX_FRACTION_BITS).
"""

from __future__ import annotations

import asyncio
import dataclasses
import textwrap
import time

import docker
import pytest

from sandboxes.config import SandboxConfig
from sandboxes.pool import SandboxPool
from sandboxes.types import AssertTest, IoTest, Limits, Problem, ScoringMode, Verdict

from .helpers import call, problem

pytestmark = pytest.mark.docker

NOT_REWARDED = (Verdict.FAILED, Verdict.RUNTIME_ERROR, Verdict.TIMEOUT, Verdict.MEMORY_LIMIT, Verdict.OUTPUT_LIMIT, Verdict.COMPILE_ERROR)


def code(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def assert_zero(result: object) -> None:
    """A wrong program's result: a failure verdict with reward 0, never PASSED, never a masked
    SANDBOX_ERROR (reward None, which GRPO drops instead of counting as 0)."""
    assert result.verdict in NOT_REWARDED, result  # type: ignore[attr-defined]
    assert result.reward(ScoringMode.FRACTION) == 0.0, result  # type: ignore[attr-defined]


# -- 1. C++: an artefact the kernel refuses to execute ---------------------------------------------
#
# The linker appends the program's own `.interp` input section after its own: without a NUL at
# its end, PT_INTERP is not NUL-terminated and execve() fails with ENOEXEC before the point of no
# return. The runner's pre-exec code reports `exec_failed`, which `verdict.command_ended` reads as
# an infrastructure fault.

UNEXECUTABLE_CPP = code("""
    #include <cstdio>
    extern "C" const char bad_interp[4] __attribute__((section(".interp"), used)) = {'a', 'b', 'c', 'd'};
    int main() { std::puts("0"); return 0; }
""")


async def test_a_cpp_program_the_kernel_will_not_execute_is_not_sandbox_error(pool: SandboxPool) -> None:
    p = Problem(id="interp", language="cpp", tests=(IoTest("1 2\n", "3\n"), IoTest("2 2\n", "4\n")))
    first = await pool.run(p, UNEXECUTABLE_CPP)
    assert_zero(first)
    again = await pool.run(p, UNEXECUTABLE_CPP)  # from the binary cache this time
    assert_zero(again)


# -- 2. the judge formats a detail by asking the program -------------------------------------------
#
# `assert answer() == 42, answer()`: the message is the program's object (an opaque Remote);
# the judge's `_detail` calls str() on the AssertionError, which asks the program for str()/repr()
# of its object; the program raises there, and the exception escapes the judge's handler.

LAZY_MESSAGE = code("""
    class Evil:
        def __str__(self):
            raise ValueError("no")
        def __repr__(self):
            raise ValueError("no")
    def answer():
        return Evil()
""")


@pytest.mark.parametrize(
    "test",
    ["assert answer() == 42, answer()", "table = {1: 2}\nassert table[answer()] == 42"],
    ids=["assert-message", "key-error"],
)
async def test_an_exception_message_the_program_formats_is_not_sandbox_error(pool: SandboxPool, test: str) -> None:
    result = await pool.run(problem(AssertTest(test), entry_point="answer"), LAZY_MESSAGE)
    assert_zero(result)


# -- 3. the wall clock leaves out the program's run-queue delay: keep the judge busy, and wait ---
#
# The judge's CPU is not the program's, and the program's main thread waiting for a CPU is left
# out of the wall clock. So: send the judge a reply that is costly to decode (a Fraction of two
# huge coprime integers: Fraction() runs math.gcd, quadratic), then make the main thread
# SCHED_IDLE and keep it on the judge's CPU. The judge takes (nearly) all of that CPU, the main
# thread is runnable all the time and waits: its run-queue delay grows as fast as real time, its
# CPU time hardly at all, so the test's wall clock stays near 0 and its CPU far under the limit
# until the overload cap: SANDBOX_ERROR ("the machine is overloaded") instead of TIMEOUT.

IDLE_BEHIND_THE_JUDGE = code("""
    import os

    def _judge():
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open(f"/proc/{p}/status") as f:
                        if "\\nUid:\\t10002\\t" in f.read():
                            return int(p)
                except OSError:
                    pass

    def _cpu_of(pid):
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[36])

    def answer(*_):
        judge = _judge()
        hexes = HEX_CHARS
        num = "f" + os.urandom(hexes // 2).hex()
        den = "b" + os.urandom(hexes // 2).hex() + "1"
        body = ('{"value": {"$fraction": [{"$int": "%s"}, {"$int": "%s"}]}}' % (num, den)).encode()
        del num, den
        os.write(5, len(body).to_bytes(4, "big") + body)  # the reply to this call, written by hand
        del body
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        here = -1
        while True:  # runnable, forever, on whichever CPU the judge is on
            try:
                cpu = _cpu_of(judge)
            except (OSError, TypeError):
                continue
            if cpu != here:
                os.sched_setaffinity(0, {cpu})
                here = cpu
""")


async def test_a_program_cannot_hide_behind_a_busy_judge_to_get_sandbox_error(
    fast_config: SandboxConfig, docker_client: docker.DockerClient
) -> None:
    limits = Limits(time_limit_s=1.0, memory_limit_mb=256, output_limit_bytes=1 << 20)  # wall cap 4 s, overload cap 12 s
    program = IDLE_BEHIND_THE_JUDGE.replace("HEX_CHARS", str(900_000))  # a reply under the 2 MB reply cap
    p = problem(AssertTest("assert answer() == 42"), entry_point="answer", limits=limits)
    async with SandboxPool(dataclasses.replace(fast_config, workers=1), client=docker_client) as pool:
        result = await pool.run(p, program)
    assert_zero(result)


# -- 4. the host decodes what the judge passes on, holding the GIL ---------------------------------
#
# A call test's return value is decoded again on the host (`compare.compare_json`), in a worker
# thread "so that a large hostile value does not hold up the event loop"; but Fraction() runs
# math.gcd in C, holding the GIL, for seconds on integers of a few megabits: the whole pool (every
# other job, the gRPC server in the same process) stops meanwhile.

HUGE_FRACTION = code("""
    import os, time
    def answer(*_):
        num = "f" + os.urandom(HEX_CHARS // 2).hex()
        den = "b" + os.urandom(HEX_CHARS // 2).hex() + "1"
        body = ('{"value": {"$fraction": [{"$int": "%s"}, {"$int": "%s"}]}}' % (num, den)).encode()
        os.write(5, len(body).to_bytes(4, "big") + body)
        time.sleep(1000)
""")


async def test_a_returned_value_does_not_stall_the_hosts_event_loop(fast_config: SandboxConfig, docker_client: docker.DockerClient) -> None:
    limits = Limits(time_limit_s=5.0, memory_limit_mb=256, output_limit_bytes=1 << 20)  # wall cap 16 s
    program = HUGE_FRACTION.replace("HEX_CHARS", str(500_000))  # ~2 Mbit each: a few seconds of gcd in the judge, again on the host
    p = problem(call([], 42), entry_point="answer", limits=limits)
    lags: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            lags.append(now - last - 0.05)
            last = now

    async with SandboxPool(dataclasses.replace(fast_config, workers=1), client=docker_client) as pool:
        tick = asyncio.create_task(ticker())
        try:
            result = await pool.run(p, program)
        finally:
            tick.cancel()
    assert_zero(result)
    assert max(lags, default=0.0) < 1.0, f"the event loop stood still for {max(lags):.1f} s while the host compared a returned value"


# -- 5. the run-queue delay is read from the main thread only ----------------------------------
#
# `/proc/PID/schedstat` is the thread-group leader's. The java launcher runs the JVM in a new
# thread and its first thread sleeps in pthread_join; g++'s driver sleeps in wait() while cc1plus,
# as and ld work. Their waiting for a CPU is never left out of the wall clock: on a loaded machine
# a right Java program times out, and a compile times out into a COMPILE_ERROR that the binary
# cache then keeps for that source. (Compare test_trusted_judging's
# test_time_spent_waiting_for_a_cpu_is_not_on_the_wall_clock, where Python passes.)

JAVA_SPIN = code("""
    public class Main {
        public static void main(String[] args) {
            long began = java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime();
            long x = 0;
            while (java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime() - began < 300_000_000L) x++;
            System.out.println(x > 0 ? 3 : 0);
        }
    }
""")
PY_SPIN = "import time\nbegan = time.process_time()\nwhile time.process_time() - began < 0.6:\n    pass\nprint(3)\n"


async def test_a_right_java_program_is_not_timed_out_by_a_loaded_machine(sandbox_image: str, docker_client: docker.DockerClient) -> None:
    limits = Limits(time_limit_s=2.0, memory_limit_mb=256, output_limit_bytes=65536)  # java: CPU 2.5 s, wall cap 8.5 s, overload 25.5 s
    config = SandboxConfig(image=sandbox_image, workers=1, container_cpus=0.05, default_limits=limits)
    async with SandboxPool(config, client=docker_client) as pool:
        python = await pool.run(Problem(id="spin", tests=(IoTest("", "3\n"),)), PY_SPIN)
        java = await pool.run(Problem(id="spin", language="java", tests=(IoTest("", "3\n"),)), JAVA_SPIN)
    assert python.verdict is Verdict.PASSED, python  # the load-independence the change promised, for Python
    assert java.verdict is Verdict.PASSED, java


SLOW_TO_COMPILE = code("""
    #include <cstdio>
    constexpr long long f() { long long s = 0; for (long long i = 0; i < 1500; i++) for (long long j = 0; j < 1000; j++) s += (i * j) % 7; return s; }
    constexpr long long v = f();
    int main() { std::printf("%lld\\n", v % 10); }
""")


async def test_a_right_cpp_program_does_not_get_a_cached_compile_error_from_a_loaded_machine(
    sandbox_image: str, docker_client: docker.DockerClient
) -> None:
    """A few seconds of the compiler's CPU (its limit is 10 s), on a container held to 5% of a core."""
    config = SandboxConfig(image=sandbox_image, workers=1, container_cpus=0.05)
    p = Problem(id="slow-compile", language="cpp", tests=(IoTest("", "5\n"),))
    async with SandboxPool(config, client=docker_client) as pool:
        loaded = await pool.run(p, SLOW_TO_COMPILE)
    assert loaded.verdict is not Verdict.COMPILE_ERROR, loaded


FORKED_SPINS = code("""
    import os, time
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            began = time.process_time()
            while time.process_time() - began < 0.15:
                pass
            os._exit(0)
        os.waitpid(pid, 0)
    print(3)
""")


async def test_processes_that_wait_one_after_another_are_not_timed_out_by_a_loaded_machine(
    sandbox_image: str, docker_client: docker.DockerClient
) -> None:
    """The shape of a g++ compile (a driver that sleeps while cc1plus, as and ld run in turn):
    four children, each 0.15 s of CPU, one after another, on a container held to 5% of a core.
    ~12 s of real time against a 7 s wall cap, nearly all of it waiting, by a different process
    each time: the longest wait of one thread (~3 s) would leave ~9 s on the wall clock."""
    limits = Limits(time_limit_s=2.0, memory_limit_mb=256, output_limit_bytes=65536)  # wall cap 7 s, overload 21 s
    config = SandboxConfig(image=sandbox_image, workers=1, container_cpus=0.05, default_limits=limits)
    async with SandboxPool(config, client=docker_client) as pool:
        result = await pool.run(Problem(id="forked-spins", tests=(IoTest("", "3\n"),)), FORKED_SPINS)
    assert result.verdict is Verdict.PASSED, result


# -- 6. the start-up allowance, spent on the program's own work -------------------------------------
#
# Node gets 0.25 s and the JVM 0.5 s of CPU per test on top of the limit, for their start-up. A
# program that starts faster than that spends the rest on its own work: more CPU than the problem's
# limit allows. The test measures the slack: a program that burns, in total, its limit plus 80% of
# the allowance passes.

JS_BURN = code("""
    const total = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
    const started = total();
    while (total() < BURN_S) {}
    console.log(started < 0.2 ? 3 : 0);
""")


async def test_the_startup_allowance_bounds_what_a_program_can_spend(pool: SandboxPool) -> None:
    """A runtime's start-up allowance (Node: 0.25 s of CPU, `languages.py`) can be spent on work
    (a known trade-off, as other judges' per-language time factors); past limit + allowance the
    program is a TIMEOUT."""
    limit = 1.0
    program = JS_BURN.replace("BURN_S", str(limit + 0.25 + 0.3))
    result = await pool.run(
        Problem(id="burn", language="javascript", tests=(IoTest("", "3\n"),), limits=Limits(time_limit_s=limit)), program
    )
    assert result.verdict is Verdict.TIMEOUT, result


# The same at the server's default limits (5 s, 1 MB of output: wall cap 16 s, overload cap 48 s),
# against a test that iterates the return value (HumanEval/33's `tuple(candidate(...)) == ...`):
# the program answers the call with a reference, and each `next` with a costly Fraction, from a
# helper thread, while its main thread idles behind the judge. The judge's work is unbounded.

ITERATE_BEHIND_THE_JUDGE = IDLE_BEHIND_THE_JUDGE.replace(
    "def answer(*_):",
    code("""
    import threading
    def _frames(fd):
        data = b""
        while True:
            while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    os._exit(0)
                data += chunk
            size = int.from_bytes(data[:4], "big")
            yield data[4 : 4 + size]
            data = data[4 + size :]

    def _send(body):
        os.write(5, len(body).to_bytes(4, "big") + body)

    def _serve(costly):
        _send(b'{"value": {"$ref": {"id": 1, "type": "gen"}}}')
        for request in _frames(5):
            if b'"iter"' in request:
                _send(b'{"value": {"$ref": {"id": 2, "type": "it"}}}')
            else:
                _send(costly)

    def answer(*_):""").rstrip(),
).replace(
    'os.write(5, len(body).to_bytes(4, "big") + body)  # the reply to this call, written by hand',
    "threading.Thread(target=_serve, args=(body,), daemon=True).start()",
)


async def test_at_default_limits_a_program_cannot_hide_behind_a_busy_judge(
    fast_config: SandboxConfig, docker_client: docker.DockerClient
) -> None:
    limits = Limits(time_limit_s=5.0, memory_limit_mb=256, output_limit_bytes=1 << 20)  # SandboxConfig's defaults
    program = ITERATE_BEHIND_THE_JUDGE.replace("HEX_CHARS", str(900_000))
    p = problem(AssertTest("assert tuple(candidate([1, 2, 3])) == (1, 2, 3)"), entry_point="candidate", limits=limits)
    async with SandboxPool(dataclasses.replace(fast_config, workers=1), client=docker_client) as pool:
        result = await pool.run(p, program.replace("def answer(", "def candidate("))
    assert_zero(result)


# Held: waiting behind its own processes buys nothing (their CPU time is the program's).

IDLE_BEHIND_ITS_OWN_CHILD = code("""
    import os
    child = os.fork()
    if child == 0:
        while True:
            pass
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    here = -1
    while True:
        with open(f"/proc/{child}/stat") as f:
            cpu = int(f.read().rsplit(")", 1)[1].split()[36])
        if cpu != here:
            os.sched_setaffinity(0, {cpu})
            here = cpu
""")


async def test_waiting_behind_its_own_processes_is_a_timeout(pool: SandboxPool) -> None:
    result = await pool.run(problem(IoTest("", "3\n")), IDLE_BEHIND_ITS_OWN_CHILD)
    assert result.verdict is Verdict.TIMEOUT and "CPU" in result.tests[0].detail, result
