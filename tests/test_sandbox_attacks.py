"""Adversarial tests: each one tries an attack a reward-seeking policy could write, asserts
that it earned nothing it should not have, and that the pool still answers correctly after.

Every "wrong program" here would need the attack to work in order to pass: its honest
answer is wrong, so a PASSED verdict can only mean the sandbox was fooled.
"""

from __future__ import annotations

import socket
import textwrap
import threading

import pytest

from sandboxes.pool import SandboxPool
from sandboxes.types import AssertTest, Limits, Verdict

from .helpers import assert_nothing_left, assert_pool_healthy, call, io, problem

pytestmark = pytest.mark.docker

WRONG_ANSWER_TEST = AssertTest("assert answer() == 42")


def code(text: str) -> str:
    return textwrap.dedent(text).lstrip()


# -- resource exhaustion --------------------------------------------------------------------


async def test_fork_bomb_is_contained(pool: SandboxPool) -> None:
    bomb = code("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """)
    result = await pool.run(problem(AssertTest("pass")), bomb)
    assert result.verdict is Verdict.TIMEOUT
    await assert_pool_healthy(pool)


async def test_memory_bomb_hits_the_memory_limit(pool: SandboxPool) -> None:
    bomb = "blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))\n"
    result = await pool.run(problem(AssertTest("pass")), bomb)
    assert result.verdict is Verdict.MEMORY_LIMIT
    await assert_pool_healthy(pool)


async def test_infinite_loop_ignoring_sigalrm_times_out(pool: SandboxPool) -> None:
    loop = code("""
        import signal
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        signal.alarm(1)
        while True:
            pass
    """)
    result = await pool.run(problem(AssertTest("pass")), loop)
    assert result.verdict is Verdict.TIMEOUT
    await assert_pool_healthy(pool)


async def test_sleeping_past_the_limit_times_out(pool: SandboxPool) -> None:
    result = await pool.run(problem(AssertTest("pass")), "import time\ntime.sleep(60)\n")
    assert result.verdict is Verdict.TIMEOUT
    await assert_pool_healthy(pool)


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
async def test_output_flood_hits_the_output_limit(pool: SandboxPool, stream: str) -> None:
    flood = f"import sys\nwhile True:\n    sys.{stream}.write('x' * 4096)\n"
    result = await pool.run(problem(AssertTest("pass")), flood)
    assert result.verdict is Verdict.OUTPUT_LIMIT
    await assert_pool_healthy(pool)


@pytest.mark.parametrize(("byte", "fit"), [(b"\x01", 16), (b"\xff", 5)])  # \xff arrives as U+FFFD: 3 bytes
async def test_outputs_past_the_jobs_total_are_output_limit_not_a_runner_out_of_memory(pool: SandboxPool, byte: bytes, fit: int) -> None:
    """Every test prints 1 MB of a byte whose JSON escape is six bytes: all of them in one result
    frame would be SANDBOX_ERROR (a masked wrong answer) once the runner runs out of memory for
    it. Past MAX_JOB_OUTPUT_BYTES in all, a test is OUTPUT_LIMIT instead."""
    flood = f"import sys\nsys.stdout.buffer.write({byte!r} * 1_000_000)\n"
    limits = Limits(time_limit_s=1.0, memory_limit_mb=128, output_limit_bytes=1 << 20)
    result = await pool.run(problem(*(io(f"{i}\n", "0\n") for i in range(24)), limits=limits), flood)
    assert [t.verdict for t in result.tests] == [Verdict.FAILED] * fit + [Verdict.OUTPUT_LIMIT] * (24 - fit), result.tests[fit].detail
    assert "outputs over the job's tests pass 16 MiB" in result.tests[fit].detail
    await assert_pool_healthy(pool)


async def test_filling_the_tmpfs_does_not_affect_the_next_job(single_pool: SandboxPool) -> None:
    fill = code("""
        import os
        with open("fill.bin", "wb") as f:
            try:
                while True:
                    f.write(b"\\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        def answer():
            return 0
    """)
    result = await single_pool.run(problem(WRONG_ANSWER_TEST), fill)
    assert result.verdict is Verdict.FAILED
    writer = "def answer():\n    open('small.txt', 'w').write('x' * 100000)\n    return 42\n"
    assert (await single_pool.run(problem(WRONG_ANSWER_TEST), writer)).verdict is Verdict.PASSED


# -- attacks on the runner and on later jobs ------------------------------------------------


async def test_kill_every_process_does_not_hurt_the_pool(pool: SandboxPool) -> None:
    killer = code("""
        import os, signal
        for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            for target in (-1, 1, os.getppid()):
                try:
                    os.kill(target, sig)
                except OSError:
                    pass
        def answer():
            return 0
    """)
    result = await pool.run(problem(WRONG_ANSWER_TEST), killer)
    assert result.verdict is not Verdict.PASSED
    assert result.verdict is not Verdict.SANDBOX_ERROR
    await assert_pool_healthy(pool)


async def test_background_process_does_not_survive_into_the_next_job(single_pool: SandboxPool) -> None:
    daemon = code("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                while True:  # tamper with whatever runs next
                    for target in (-1, 1):
                        try:
                            os.kill(target, 9)
                        except OSError:
                            pass
                    try:
                        open("/tmp/job/tampered", "w").write("x")
                    except OSError:
                        pass
                    time.sleep(0.001)
            os._exit(0)
        def answer():
            return 0
    """)
    result = await single_pool.run(problem(WRONG_ANSWER_TEST), daemon)
    assert result.verdict in (Verdict.FAILED, Verdict.RUNTIME_ERROR)  # its daemon may kill the test
    await assert_nothing_left(single_pool)
    await assert_pool_healthy(single_pool)


async def test_stopping_every_process_does_not_stall_the_next_job(single_pool: SandboxPool) -> None:
    freezer = code("""
        import os, signal
        for pid in os.listdir("/proc"):
            if pid.isdigit() and int(pid) != os.getpid():
                try:
                    os.kill(int(pid), signal.SIGSTOP)
                except OSError:
                    pass
        def answer():
            return 0
    """)
    assert (await single_pool.run(problem(WRONG_ANSWER_TEST, WRONG_ANSWER_TEST), freezer)).verdict is Verdict.FAILED
    result = await single_pool.run(problem(WRONG_ANSWER_TEST, WRONG_ANSWER_TEST), "def answer():\n    return 42\n")
    assert [t.verdict for t in result.tests] == [Verdict.PASSED, Verdict.PASSED]


async def test_files_left_behind_do_not_poison_the_next_job(single_pool: SandboxPool) -> None:
    poison = code("""
        import os
        for place in (".", "/tmp", "/tmp/job"):
            try:
                with open(os.path.join(place, "math.py"), "w") as f:
                    f.write("def sqrt(x):\\n    return 42\\n")
                with open(os.path.join(place, "poison.txt"), "w") as f:
                    f.write("poison")
            except OSError:
                pass
        def answer():
            return 0
    """)
    assert (await single_pool.run(problem(WRONG_ANSWER_TEST), poison)).verdict is Verdict.FAILED
    victim = "import math, os\ndef root(x):\n    return math.sqrt(x)\n"
    checks = problem(
        AssertTest("assert root(16) == 4"),
        AssertTest("assert os.listdir('.') == []"),
        AssertTest("assert not any(os.path.exists(p) for p in ('/tmp/math.py', '/tmp/poison.txt', 'poison.txt'))"),
    )
    assert (await single_pool.run(checks, victim)).verdict is Verdict.PASSED


async def test_a_test_that_mutates_globals_does_not_affect_the_next_test(pool: SandboxPool) -> None:
    program = "counter = [0]\ndef bump():\n    counter[0] += 1\n    return counter[0]\n"
    checks = problem(AssertTest("assert bump() == 1"), AssertTest("assert bump() == 1"), AssertTest("assert bump() == 1"))
    assert (await pool.run(checks, program)).verdict is Verdict.PASSED


# -- pretending to pass -------------------------------------------------------------------------

EARLY_EXITS = {
    "sys.exit(0)": "import sys\nsys.exit(0)\n",
    "os._exit(0)": "import os\nos._exit(0)\n",
    "raise SystemExit": "raise SystemExit\n",
    "atexit + exit": "import atexit, os\natexit.register(lambda: os._exit(0))\nraise SystemExit(0)\n",
    "exit inside the function": "import os\ndef answer():\n    os._exit(0)\n",
    "thread exits with 0": code("""
        import os, threading, time
        def answer():
            threading.Thread(target=lambda: os._exit(0)).start()
            time.sleep(1)
            return 0
    """),
    "thread exits before the test": code("""
        import os, threading, time
        def bail():
            time.sleep(0.05)
            os._exit(0)
        threading.Thread(target=bail, daemon=True).start()
        def answer():
            time.sleep(1)
            return 0
    """),
}


@pytest.mark.parametrize("attack", list(EARLY_EXITS), ids=list(EARLY_EXITS))
async def test_exiting_early_with_status_zero_does_not_pass(pool: SandboxPool, attack: str) -> None:
    result = await pool.run(problem(WRONG_ANSWER_TEST), EARLY_EXITS[attack])
    assert result.verdict in (Verdict.RUNTIME_ERROR, Verdict.FAILED), result
    await assert_pool_healthy(pool)


FAKE_REPORTS = {
    "print PASSED": "print('PASSED')\nprint('{\"ok\": true}')\ndef answer():\n    return 0\n",
    "stderr": "import sys\nsys.stderr.write('{\"ok\": true}\\nAll tests passed\\n')\ndef answer():\n    return 0\n",
    "every descriptor": code("""
        import os, json
        frame = b"\\x00codereward-frame\\x00" + json.dumps({"ok": True, "value": 42, "nonce": "0" * 32}).encode()
        for fd in range(256):
            for payload in (frame, b'{"ok": true}\\n', b"PASSED\\n"):
                try:
                    os.write(fd, payload)
                except OSError:
                    pass
        os._exit(0)
    """),
}


@pytest.mark.parametrize("attack", list(FAKE_REPORTS), ids=list(FAKE_REPORTS))
async def test_printed_or_written_fake_results_do_not_pass(pool: SandboxPool, attack: str) -> None:
    for test in (WRONG_ANSWER_TEST, call([], 42)):
        p = problem(test, entry_point="answer")
        result = await pool.run(p, FAKE_REPORTS[attack])
        # (junk on the judge's socket is a reply over the cap: OUTPUT_LIMIT, no reward either)
        assert result.verdict in (Verdict.RUNTIME_ERROR, Verdict.FAILED, Verdict.OUTPUT_LIMIT), (test, result)
    await assert_pool_healthy(pool)


ALWAYS_EQUAL = code("""
    class Anything(int):
        def __eq__(self, other): return True
        def __ne__(self, other): return False
        def __lt__(self, other): return True
        def __gt__(self, other): return True
        def __hash__(self): return 0
        def __bool__(self): return True
        def __contains__(self, item): return True
    def answer():
        return Anything(0)
""")


@pytest.mark.parametrize(
    "test",
    [
        WRONG_ANSWER_TEST,
        AssertTest("assert 42 == answer()"),
        AssertTest("assert [42, 7] == [answer(), answer()]"),
        AssertTest("assert not (answer() != 42)"),
        AssertTest("assert 41 < answer() < 43"),
        AssertTest("assert 'secret' in answer()"),
        call([], 42),
    ],
    ids=["eq", "reflected-eq", "in-a-list", "ne", "chained-lt", "contains", "call"],
)
async def test_an_always_equal_object_does_not_pass(pool: SandboxPool, test: AssertTest) -> None:
    result = await pool.run(problem(test, entry_point="answer"), ALWAYS_EQUAL)
    # It crosses as the plain int 0: wrong, or (`'secret' in 0`) an error in the test.
    assert result.verdict in (Verdict.FAILED, Verdict.RUNTIME_ERROR), result


async def test_plain_results_of_stdlib_classes_still_compare(pool: SandboxPool) -> None:
    program = "from collections import Counter, namedtuple\nP = namedtuple('P', 'x y')\ndef f():\n    return Counter('aab'), P(1, 2)\n"
    checks = problem(
        AssertTest("assert f()[0] == Counter({'a': 2, 'b': 1})"),
        AssertTest("assert f()[1] == (1, 2)"),
        AssertTest("assert f()[1] is not None"),
    )
    result = await pool.run(checks, program)
    assert result.verdict is Verdict.PASSED, result


async def test_rebinding_builtins_does_not_skip_the_test(pool: SandboxPool) -> None:
    program = code("""
        import builtins, os, json
        builtins.exec = lambda *a, **k: None
        builtins.compile = lambda *a, **k: None
        builtins.AssertionError = type("Quiet", (Exception,), {})
        os.write = lambda fd, data: len(data)
        json.dumps = lambda *a, **k: '{"ok": true}'
        def answer():
            return 0
    """)
    result = await pool.run(problem(WRONG_ANSWER_TEST), program)
    assert result.verdict is not Verdict.PASSED, result


async def test_expected_outputs_are_not_in_the_sandbox(pool: SandboxPool) -> None:
    """A program that searches its memory and its stack for the job's expected outputs finds none."""
    thief = code("""
        import gc, json, sys
        def loot():
            gc.unfreeze()
            seen = list(gc.get_objects())
            frame = sys._getframe()
            while frame is not None:
                seen.extend(frame.f_locals.values())
                frame = frame.f_back
            for obj in seen:
                if isinstance(obj, dict):
                    for key in ("expected_stdout", "expected_json", "expected"):
                        if isinstance(obj.get(key), str):
                            return obj[key]
            return None
        stolen = loot()
        def answer(*args):
            return json.loads(stolen) if stolen else None
        if __name__ == "__main__":
            print(stolen or "")
    """)
    tests = problem(io("", "the expected line"), call([], "the expected value"), entry_point="answer")
    result = await pool.run(tests, thief)
    assert [t.verdict for t in result.tests] == [Verdict.FAILED, Verdict.FAILED], result


async def test_runner_memory_cannot_be_read(pool: SandboxPool) -> None:
    probe = code("""
        def answer():
            opened = []
            for path in ("/proc/1/mem", "/proc/1/environ", "/proc/1/fd/0", "/proc/1/fd/1"):
                try:
                    with open(path, "rb") as f:
                        f.read(1)
                    opened.append(path)
                except OSError:
                    pass
            return opened
    """)
    assert (await pool.run(problem(call([], []), entry_point="answer"), probe)).verdict is Verdict.PASSED


# -- crashes --------------------------------------------------------------------------------


async def test_segfault_via_ctypes_is_a_runtime_error(pool: SandboxPool) -> None:
    result = await pool.run(problem(WRONG_ANSWER_TEST), "import ctypes\nctypes.string_at(0)\n")
    assert result.verdict is Verdict.RUNTIME_ERROR
    assert "SIGSEGV" in result.tests[0].detail
    await assert_pool_healthy(pool)


@pytest.mark.parametrize("limit", ["", "import sys\nsys.setrecursionlimit(10**7)\n"], ids=["default", "raised-limit"])
async def test_infinite_recursion_is_a_runtime_error(pool: SandboxPool, limit: str) -> None:
    program = limit + "def answer(n=0):\n    return answer(n + 1)\n"
    result = await pool.run(problem(WRONG_ANSWER_TEST), program)
    # 3.11 keeps Python frames off the C stack, so a raised limit ends in memory or time
    assert result.verdict in (Verdict.RUNTIME_ERROR, Verdict.MEMORY_LIMIT, Verdict.TIMEOUT)
    await assert_pool_healthy(pool)


# -- isolation from the host ----------------------------------------------------------------


async def test_host_files_are_not_visible(pool: SandboxPool, tmp_path: pytest.TempPathFactory) -> None:
    secret = tmp_path / "secret.txt"  # type: ignore[operator]
    secret.write_text("TOP-SECRET-91c2")
    thief = code(f"""
        import os
        def answer():
            for path in ({str(secret)!r}, "/etc/shadow", "/root/.bash_history", "/var/run/docker.sock"):
                try:
                    with open(path, "rb") as f:
                        return f.read().decode(errors="replace")
                except OSError:
                    pass
            return os.path.exists("/var/run/docker.sock")
    """)
    result = await pool.run(problem(call([], "TOP-SECRET-91c2"), entry_point="answer"), thief)
    assert result.verdict is Verdict.FAILED
    assert "TOP-SECRET" not in result.tests[0].detail.replace('expected "TOP-SECRET-91c2"', "")


async def test_a_host_loopback_listener_cannot_be_reached(pool: SandboxPool) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        try:
            accepted.append(listener.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    probe = code(f"""
        import socket
        def answer():
            for host in ("127.0.0.1", "localhost", "::1"):
                try:
                    socket.create_connection((host, {port}), timeout=0.3).close()
                    return "connected"
                except OSError:
                    pass
            return "isolated"
    """)
    try:
        result = await pool.run(problem(call([], "connected"), entry_point="answer"), probe)
    finally:
        thread.join()
        listener.close()
    assert result.verdict is Verdict.FAILED
    assert accepted == []


async def test_container_hardening_as_seen_from_inside(pool: SandboxPool) -> None:
    probe = code("""
        import os
        def status(key):
            for line in open("/proc/self/status"):
                if line.startswith(key + ":"):
                    return line.split()[1]
        def interfaces():
            return sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:])
        def writable(path):
            try:
                open(path, "w").close()
                return True
            except OSError:
                return False
    """)
    checks = problem(
        AssertTest("assert os.getuid() != 0 and os.getgid() != 0"),
        AssertTest("assert int(status('CapEff'), 16) == 0 and int(status('CapBnd'), 16) == 0"),
        AssertTest("assert status('NoNewPrivs') == '1'"),
        AssertTest("assert status('Seccomp') == '2'"),
        AssertTest("assert interfaces() == ['lo']"),
        AssertTest("assert not writable('/etc/passwd') and not writable('/opt/codereward/runner/judge.py') and not writable('/root')"),
        AssertTest("assert not os.path.exists('/dev/shm') or not writable('/dev/shm/x')"),
        AssertTest("assert set(os.environ) <= {'PATH', 'LANG', 'HOME', 'TMPDIR'}"),
    )
    result = await pool.run(checks, probe)
    assert result.verdict is Verdict.PASSED, [t for t in result.tests if t.verdict is not Verdict.PASSED]


async def test_limits_can_be_raised_per_problem(pool: SandboxPool) -> None:
    program = "import time\ndef answer():\n    began = time.process_time()\n    while time.process_time() - began < 1.3:\n        pass\n    return 42\n"
    slow = problem(WRONG_ANSWER_TEST, limits=Limits(time_limit_s=3.0))
    assert (await pool.run(slow, program)).verdict is Verdict.PASSED
    assert (await pool.run(problem(WRONG_ANSWER_TEST), program)).verdict is Verdict.TIMEOUT
