"""Trusted judging, attacked: each test is a wrong program that would pass only if it could
reach the judge — forge its report, smuggle an always-equal object past the boundary, shadow
a name the test reads, read the expected value, game the comparator, break its group, leak
into the next job, turn its 0 into a masked SANDBOX_ERROR — and asserts it earned nothing.
Then the other side: right answers of every kind the boundary carries pass, and a verdict
does not depend on how busy the machine is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import textwrap

import docker
import pytest

from sandboxes.config import SandboxConfig
from sandboxes.pool import SandboxPool
from sandboxes.types import AssertTest, CallTest, Limits, Problem, ScoringMode, Verdict

from .helpers import assert_pool_healthy, call, io, problem

pytestmark = pytest.mark.docker

NOT_REWARDED = (Verdict.FAILED, Verdict.RUNTIME_ERROR, Verdict.TIMEOUT, Verdict.MEMORY_LIMIT, Verdict.OUTPUT_LIMIT)


def code(text: str) -> str:
    return textwrap.dedent(text).lstrip()


async def assert_not_rewarded(pool: SandboxPool, p: Problem, program: str) -> None:
    result = await pool.run(p, program)
    assert result.verdict in NOT_REWARDED, result  # never PASSED, never a masked SANDBOX_ERROR
    assert result.reward(ScoringMode.FRACTION) == 0.0


# -- 1. forging the report ------------------------------------------------------------------

FORGERS = {
    "json-encoder": code("""
        import json
        class Liar(json.JSONEncoder):
            def encode(self, o):
                return '{"passed": true, "ok": true, "value": 42}'
        json._default_encoder = Liar()
        json.dumps = lambda *a, **k: '{"passed": true}'
        def answer():
            return 0
    """),
    "builtins": code("""
        import builtins
        builtins.memoryview = lambda data: memoryview(b'{"passed": true}')
        builtins.AssertionError = type("AssertionError", (Exception,), {})
        def answer():
            return 0
    """),
    "frames-and-gc": code("""
        import gc, sys
        def answer():
            found = [o for o in gc.get_objects() if isinstance(o, dict) and ("nonce" in o or "expected" in o)]
            frame = sys._getframe()
            while frame is not None:
                frame.f_locals.get("report", None)
                frame = frame.f_back
            return 0
    """),
    "other-processes-descriptors": code("""
        import os
        def answer():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                for fd in range(64):
                    try:
                        with open(f"/proc/{pid}/fd/{fd}", "wb", buffering=0) as f:
                            f.write(b'\\x00\\x00\\x00\\x10{"passed": true}')
                    except OSError:
                        pass
            return 0
    """),
    "signal-the-judge": code("""
        import os, signal
        def answer():
            for pid in os.listdir("/proc"):
                if pid.isdigit() and int(pid) != os.getpid():
                    for sig in (signal.SIGSTOP, signal.SIGKILL):
                        try:
                            os.kill(int(pid), sig)
                        except OSError:
                            pass
            return 0
    """),
}


@pytest.mark.parametrize("attack", list(FORGERS), ids=list(FORGERS))
async def test_a_forged_report_does_not_pass(pool: SandboxPool, attack: str) -> None:
    await assert_not_rewarded(pool, problem(AssertTest("assert answer() == 42"), entry_point="answer"), FORGERS[attack])
    await assert_pool_healthy(pool)


async def test_the_expected_value_is_nowhere_in_the_programs_reach(single_pool: SandboxPool) -> None:
    """The test's code, with its expected value, never enters a process the program runs in:
    not its own memory (inherited from the runner), not the judge's, not the runner's."""
    scan = code("""
        import os, re
        MARK = b"EXPECTED" + b"-"
        def readable(pid):
            try:
                with open(f"/proc/{pid}/maps") as maps:
                    for line in maps:
                        span, perms = line.split()[:2]
                        if perms.startswith("r"):
                            start, end = (int(x, 16) for x in span.split("-"))
                            yield start, end
            except OSError:
                return
        def answer():
            for pid in ["self"] + [p for p in os.listdir("/proc") if p.isdigit()]:
                try:
                    mem = open(f"/proc/{pid}/mem", "rb", buffering=0)
                except OSError:
                    continue
                for start, end in readable(pid):
                    try:
                        mem.seek(start)
                        data = mem.read(min(end - start, 1 << 26))
                    except (OSError, ValueError, OverflowError):
                        continue
                    found = re.search(re.escape(MARK) + rb"[A-Za-z0-9]{12}", data)
                    if found:
                        return found.group().decode()
            return "nothing found"
    """)
    secret = "EXPECTED-" + "k9Xq2Zr8wT4p"
    checks = problem(AssertTest(f"assert answer() == {secret!r}"), entry_point="answer")
    for _ in range(3):  # the same problem again: nothing of an earlier job's test is left either
        result = await single_pool.run(checks, scan)
        assert result.verdict is Verdict.FAILED, result


# -- 2. always-equal objects past the boundary ------------------------------------------------

ALWAYS_EQUAL = {
    "weakref-proxy": code("""
        import weakref
        class Anything:
            def __eq__(self, other): return True
            __hash__ = object.__hash__
        keep = Anything()
        def answer():
            return weakref.proxy(keep)
    """),
    "mapping-proxy": code("""
        import types
        def answer():
            return types.MappingProxyType({"a": 1})
    """),
    "fake-mro": code("""
        class Meta(type):
            @property
            def __mro__(cls): return (int, object)
            @property
            def __flags__(cls): return 0
        class Anything(metaclass=Meta):
            def __eq__(self, other): return True
            __hash__ = object.__hash__
        def answer():
            return Anything()
    """),
    "list-own-iter": code("""
        class Rigged(list):
            def __iter__(self): return iter([42])
            def __eq__(self, other): return True
        def answer():
            return Rigged([0])
    """),
    "counter-missing": code("""
        from collections import Counter
        class Rigged(Counter):
            def __missing__(self, key): return 42
            def __eq__(self, other): return True
        def answer():
            return Rigged()
    """),
    "rebound-builtins": code("""
        import builtins
        builtins.isinstance = lambda *a: True
        builtins.type = lambda *a: int
        builtins.len = lambda *a: 1
        def answer():
            return 0
    """),
    "trace-hook": code("""
        import sys
        def tracer(frame, event, arg):
            if event == "return":
                frame.f_locals["value"] = 42
            return tracer
        sys.settrace(tracer)
        sys.setprofile(tracer)
        def answer():
            return 0
    """),
    "ctypes": code("""
        import ctypes
        def answer():
            forty_two = 42
            ctypes.memmove(id(0) + 24, id(forty_two) + 24, 4)  # 0 is 42 now, in this process
            return 0
    """),
    "int-subclass": code("""
        class Anything(int):
            def __eq__(self, other): return True
            __hash__ = int.__hash__
        def answer():
            return Anything(0)
    """),
}


@pytest.mark.parametrize("attack", list(ALWAYS_EQUAL), ids=list(ALWAYS_EQUAL))
@pytest.mark.parametrize("form", ["assert", "reversed", "in-list", "call"])
async def test_an_always_equal_value_does_not_pass(pool: SandboxPool, attack: str, form: str) -> None:
    test = {
        "assert": AssertTest("assert answer() == 42"),
        "reversed": AssertTest("assert 42 == answer() and not (answer() != 42)"),
        "in-list": AssertTest("assert [answer()] == [42] and {'k': answer()} == {'k': 42}"),
        "call": call([], 42),
    }[form]
    await assert_not_rewarded(pool, problem(test, entry_point="answer"), ALWAYS_EQUAL[attack])


# -- 3. the test reads the program's names -------------------------------------------------------

SHADOWS = {
    "abs": ("def abs(x):\n    return 0.0\ndef mean(xs):\n    return 0.0\n", "assert abs(mean([1.0, 2.0, 3.0]) - 2.0) < 1e-6"),
    "sorted": ("def sorted(xs):\n    return [1, 2, 3]\ndef f(xs):\n    return xs\n", "assert f([3, 1, 2]) == sorted([3, 1, 2])"),
    "set": ("def set(*a):\n    return 'same'\ndef f(xs):\n    return [2, 2]\n", "assert set(f([1, 1])) == set([1])"),
    "len": ("def len(x):\n    return 3\ndef f():\n    return []\n", "assert len(f()) == 3"),
    "math": ("import math\nmath.isclose = lambda *a, **k: True\ndef f():\n    return 1.0\n", "assert math.isclose(f(), 2.0)"),
    "math-unimported": ("import math\nmath.isclose = lambda *a, **k: True\ndef f():\n    return 1.0\n", "assert math.isclose(f(), 2.0)"),
}


@pytest.mark.parametrize("name", list(SHADOWS), ids=list(SHADOWS))
@pytest.mark.parametrize("named", [True, False], ids=["entry-point", "no-entry-point"])
async def test_builtins_and_modules_the_test_reads_are_not_the_programs(pool: SandboxPool, name: str, named: bool) -> None:
    program, test = SHADOWS[name]
    entry = "f" if "def f" in program else "mean"
    setup = "import math\n" if name == "math" else ""
    await assert_not_rewarded(pool, problem(AssertTest(test), entry_point=entry if named else "", setup_code=setup), program)


async def test_a_helper_from_the_setup_code_is_not_the_programs(pool: SandboxPool) -> None:
    """HumanEval's encode/decode pairs: the test encodes with the setup's helper; a program that
    redefines the helper (to the identity, say) and decodes with the identity fails."""
    setup = 'def encode_shift(s):\n    return "".join(chr(((ord(c) + 5 - 97) % 26) + 97) for c in s)\n'
    cheat = "def encode_shift(s):\n    return s\ndef decode_shift(s):\n    return s\n"
    test = AssertTest("for w in ['abc', 'hello']:\n    assert decode_shift(encode_shift(w)) == w")
    for entry_point in ("decode_shift", ""):
        await assert_not_rewarded(pool, problem(test, entry_point=entry_point, setup_code=setup), cheat)
    right = "def decode_shift(s):\n    return ''.join(chr(((ord(c) - 5 - 97) % 26) + 97) for c in s)\n"
    assert (await pool.run(problem(test, entry_point="decode_shift", setup_code=setup), right)).verdict is Verdict.PASSED


async def test_only_the_named_names_come_from_the_program(pool: SandboxPool) -> None:
    program = "class Box:\n    def __init__(self, v):\n        self.v = v\ndef unbox(b):\n    return b.v\n"
    test = AssertTest("assert unbox(Box(3)) == 3")
    result = await pool.run(problem(test, entry_point="unbox"), program)
    assert result.verdict is Verdict.RUNTIME_ERROR and "Box" in result.tests[0].detail  # not named: not read
    named = Problem(id="t", tests=(test,), entry_point="unbox", program_names=("Box",))
    assert (await pool.run(named, program)).verdict is Verdict.PASSED
    assert (await pool.run(problem(test), program)).verdict is Verdict.PASSED  # no entry point: free names are the program's


# -- 4. the comparator ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("test", "program"),
    [
        (call([1000000, 2], 1000002), "def f(a, b):\n    return float(a + b + 1)\n"),  # within rel 1e-6: refused
        (call([1, 1], 2), "def f(a, b):\n    return float('inf')\n"),
        (call([], 50000000000000001), "def f():\n    return float(50000000000000001)\n"),
        (io("", "1000000007\n"), "print(1000000008.0)\n"),
        (io("", "50000000000000001\n"), "print(float(50000000000000001))\n"),
        (io("", "7\n"), "print(float('inf'))\n"),
    ],
)
async def test_an_integer_answer_is_exact(pool: SandboxPool, test: CallTest, program: str) -> None:
    await assert_not_rewarded(pool, problem(test, entry_point="f"), program)


async def test_near_integers_and_blank_lines_that_are_right_pass(pool: SandboxPool) -> None:
    assert (await pool.run(problem(call([3, 4], 7), entry_point="f"), "def f(a, b):\n    return float(a + b)\n")).verdict is Verdict.PASSED
    assert (await pool.run(problem(io("", "5\n")), "print()\nprint(5)\nprint()\n")).verdict is Verdict.PASSED


# -- 5. nothing a program returns fails its group ---------------------------------------------


@pytest.mark.parametrize(
    "evil",
    [
        "def f(x):\n    return 10 ** 400\n",
        "def f(x):\n    return float('nan')\n",
        "def f(x):\n    import sys\n    sys.set_int_max_str_digits(0)\n    return 10 ** 100000\n",
        "def f(x):\n    v = []\n    for _ in range(10000):\n        v = [v]\n    return v\n",
        "def f(x):\n    d = {}\n    d['self'] = d\n    return d\n",
        "def f(x):\n    return {(1, 2): {3}, frozenset(): b'x'}\n",
        "def f(x):\n    return 'x' * (1 << 22)\n",
        "def f(x):\n    return f\n",
    ],
)
async def test_no_return_value_breaks_the_group(pool: SandboxPool, evil: str) -> None:
    right = "def f(x):\n    return x / 2\n"
    p = problem(call([1], 0.5), AssertTest("assert f(3) == 1.5"), entry_point="f")
    results = await asyncio.gather(pool.run(p, right), pool.run(p, evil), pool.run(p, right))
    assert [r.verdict for r in results][::2] == [Verdict.PASSED, Verdict.PASSED]
    assert results[1].verdict in NOT_REWARDED, results[1]


# -- 6. nothing outlives a job ------------------------------------------------------------------

IPC_ATTEMPTS = code("""
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    IPC_CREAT, IPC_PRIVATE = 0o1000, 0
    def answer():
        made = []
        made.append(libc.shmget(IPC_PRIVATE, 1 << 20, IPC_CREAT | 0o666) >= 0)
        made.append(libc.shmget(0x1234, 4096, IPC_CREAT | 0o666) >= 0)
        made.append(libc.msgget(0x1235, IPC_CREAT | 0o666) >= 0)
        made.append(libc.semget(0x1236, 1, IPC_CREAT | 0o666) >= 0)
        made.append(libc.mq_open(b"/leak", os.O_CREAT | os.O_RDWR, 0o666, None) >= 0)
        return made
""")
PROBE = "def answer():\n    return [open(p).read().count('\\n') - 1 for p in ('/proc/sysvipc/shm', '/proc/sysvipc/msg', '/proc/sysvipc/sem')]\n"


async def test_ipc_objects_cannot_be_made_and_none_reach_the_next_job(single_pool: SandboxPool) -> None:
    result = await single_pool.run(problem(call([], [False] * 5), entry_point="answer"), IPC_ATTEMPTS)
    assert result.verdict is Verdict.PASSED, result
    probe = await single_pool.run(problem(call([], [0, 0, 0]), entry_point="answer"), PROBE)
    assert probe.verdict is Verdict.PASSED, probe
    await assert_pool_healthy(single_pool)


async def test_files_and_processes_of_a_job_are_gone_for_the_next(single_pool: SandboxPool) -> None:
    leave = code("""
        import os, subprocess
        open("/tmp/left.txt", "w").write("x")
        os.makedirs("/tmp/job/d/e", exist_ok=True)
        subprocess.Popen(["sleep", "1000"], start_new_session=True)
        def answer():
            return 0
    """)
    await single_pool.run(problem(call([], 0), entry_point="answer"), leave)
    look = "import os\ndef answer():\n    return [os.path.exists('/tmp/left.txt'), os.listdir('.'), any(open(f'/proc/{p}/cmdline').read().startswith('sleep') for p in os.listdir('/proc') if p.isdigit())]\n"
    result = await single_pool.run(problem(call([], [False, [], False]), entry_point="answer"), look)
    assert result.verdict is Verdict.PASSED, result


# -- 7. a wrong answer is never masked as SANDBOX_ERROR --------------------------------------------

MASKERS = {
    "deep-reply": code("""
        import os
        def answer():
            data = b'{"value": ' + b'[' * 200000 + b']' * 200000 + b'}'
            os.write(5, len(data).to_bytes(4, "big") + data)
            os._exit(0)
    """),
    "junk-reply": code("""
        import os
        def answer():
            for junk in (b"\\x00\\x00\\x00\\x05nope!", b"\\x00\\x00\\x00\\x02[]", b"\\x00\\x00\\x00\\x0b{\\"raise\\": 1}"):
                os.write(5, junk)
            return 1
    """),
    "close-the-socket": "import os\ndef answer():\n    os.close(5)\n    return 0\n",
    "stop-everyone": code("""
        import os, signal
        for pid in range(1, 200):
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                pass
        def answer():
            return 0
    """),
    "prlimit-the-runner": code("""
        import resource
        for pid in range(1, 100):
            try:
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, 3))
            except OSError:
                pass
        def answer():
            return 0
    """),
    "huge-exception-message": "def answer():\n    raise ValueError('x' * (1 << 24))\n",
    "exception-with-bad-str": code("""
        class Bad(Exception):
            def __str__(self):
                raise RecursionError()
        def answer():
            raise Bad()
    """),
}


@pytest.mark.parametrize("attack", list(MASKERS), ids=list(MASKERS))
async def test_a_trick_gets_a_failure_verdict_not_sandbox_error(pool: SandboxPool, attack: str) -> None:
    for test in (AssertTest("assert answer() == 42"), call([], 42)):
        await assert_not_rewarded(pool, problem(test, AssertTest("assert answer() == 42"), entry_point="answer"), MASKERS[attack])
    await assert_pool_healthy(pool)


# -- 8. right answers of every kind pass ---------------------------------------------------------

RIGHT = code("""
    from dataclasses import dataclass
    from fractions import Fraction
    from decimal import Decimal
    from collections import namedtuple, Counter, OrderedDict, deque
    Pair = namedtuple("Pair", "a b")
    @dataclass
    class Point:
        x: int
        y: int
    def half():
        return Fraction(1, 2)
    def point():
        return Point(1, 2)
    def values():
        return (1, 2), {1, 2}, frozenset({3}), {(1, 2): "a", 3: [4]}, b"xy", Decimal("1.10"), 1 + 2j, Pair(1, 2)
    def counts(s):
        return Counter(s)
    def ordered():
        return OrderedDict(b=1, a=2), deque([1, 2])
    def sort_in_place(xs):
        xs.sort()
    def fails(x):
        if x < 0:
            raise ValueError("negative")
        return x
    def gen(n):
        return (i * i for i in range(n))
    class Node:
        def __init__(self, v, nxt=None):
            self.v, self.nxt = v, nxt
        def total(self):
            return self.v + (self.nxt.total() if self.nxt else 0)
    def biggest():
        return 2 ** 5000
""")

RIGHT_TESTS = [
    "assert half() == Fraction(1, 2) and half() == 0.5",
    "assert point() == Point(1, 2) and point().x == 1",
    "t, s, fs, d, b, dec, c, p = values()\nassert (t, s, fs, d, b, dec, c) == ((1, 2), {1, 2}, frozenset({3}), {(1, 2): 'a', 3: [4]}, b'xy', Decimal('1.10'), 1 + 2j)\nassert p == (1, 2) and p.b == 2",
    "assert counts('aab') == Counter({'a': 2, 'b': 1}) and counts('aab')['a'] == 2",
    "od, dq = ordered()\nassert od == OrderedDict(b=1, a=2) and list(od) == ['b', 'a'] and dq == deque([1, 2])",
    "xs = [3, 1, 2]\nsort_in_place(xs)\nassert xs == [1, 2, 3]",
    "try:\n    fails(-1)\n    assert False\nexcept ValueError as e:\n    assert 'negative' in str(e)",
    "assert list(gen(4)) == [0, 1, 4, 9]",
    "assert Node(1, Node(2)).total() == 3",
    "assert biggest() == 2 ** 5000",
]


@pytest.mark.parametrize("test", RIGHT_TESTS)
async def test_right_answers_of_every_kind_pass(pool: SandboxPool, test: str) -> None:
    setup = "from fractions import Fraction\nfrom decimal import Decimal\nfrom collections import Counter, OrderedDict, deque\n"
    p = Problem(id="t", tests=(AssertTest(test),), setup_code=setup)  # no entry point: the free names are the program's
    result = await pool.run(p, RIGHT)
    assert result.verdict is Verdict.PASSED, result.tests[0].detail


async def test_call_tests_carry_typed_values(pool: SandboxPool) -> None:
    from reward_api.codec import dumps

    def typed(args: list[object], expected: object) -> CallTest:
        return CallTest(args_json=dumps(args), expected_json=dumps(expected))

    program = "def f(x):\n    return x\n"
    for value in [(1, 2), {1, 2}, {(1, 2): "a"}, b"\x00", frozenset({1}), 1 + 2j, 2**200]:
        assert (await pool.run(problem(typed([value], value), entry_point="f"), program)).verdict is Verdict.PASSED, value
    wrong = await pool.run(problem(typed([[1, 2]], (1, 2)), entry_point="f"), program)  # a list is not the tuple asked for
    assert wrong.verdict is Verdict.FAILED


# -- 9. verdicts do not depend on load ------------------------------------------------------------

BUSY = "import time\ndef work():\n    began = time.process_time()\n    while time.process_time() - began < 1.4:\n        pass\n    return 42\n"


async def test_cpu_bound_right_programs_pass_on_an_oversubscribed_machine(sandbox_image: str, docker_client: docker.DockerClient) -> None:
    """Eight distinct 1.4 s CPU-bound programs under a 4 s limit, on four sandboxes sharing
    these cores with a process that keeps one core busy: each gets well under a core, and
    each still passes (CPU time is the limit; the wall clock is capped at a multiple)."""
    config = SandboxConfig(image=sandbox_image, workers=4, default_limits=Limits(time_limit_s=4.0, memory_limit_mb=128, output_limit_bytes=65536))
    burner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 60\nwhile time.time() < end: pass"])
    try:
        async with SandboxPool(config, client=docker_client) as pool:
            p = problem(AssertTest("assert work() == 42"), entry_point="work")
            results = await asyncio.gather(*(pool.run(p, BUSY + f"# variant {i}\n") for i in range(8)))
    finally:
        burner.kill()
        burner.wait()
    assert [r.verdict for r in results] == [Verdict.PASSED] * 8, [r.tests[0].detail for r in results]


async def test_time_spent_waiting_for_a_cpu_is_not_on_the_wall_clock(sandbox_image: str, docker_client: docker.DockerClient) -> None:
    """A container held to 5% of a core (the CPU quota throttles it, as a loaded machine would
    starve it): a program needing 0.15 s of CPU takes ~3 s of real time, past its 2.8 s wall cap,
    and passes; one needing 0.48 s takes ~10 s, past the 8.4 s that the overload cap (3x the wall
    cap) allows at a whole core, and passes too, since that cap grows by 1/quota; one past its
    CPU limit is a TIMEOUT there, never SANDBOX_ERROR; one that sleeps times out at the wall cap."""
    limits = Limits(time_limit_s=0.6, memory_limit_mb=128, output_limit_bytes=65536)
    config = SandboxConfig(image=sandbox_image, workers=1, container_cpus=0.05, default_limits=limits)
    spin = "import time\ndef work():\n    began = time.process_time()\n    while time.process_time() - began < {}:\n        pass\n    return 42\n"
    p = problem(AssertTest("assert work() == 42"), entry_point="work")
    async with SandboxPool(config, client=docker_client) as pool:
        slow_right = await pool.run(p, spin.format(0.15))
        slower_right = await pool.run(p, spin.format(0.48))
        too_long = await pool.run(p, spin.format(0.7))
        sleeper = await pool.run(p, "import time\ndef work():\n    time.sleep(30)\n    return 42\n")
    assert slow_right.verdict is Verdict.PASSED, slow_right.tests[0].detail
    assert slower_right.verdict is Verdict.PASSED and slower_right.wall_time_s > 8.4, slower_right
    assert too_long.verdict is Verdict.TIMEOUT and "CPU" in too_long.tests[0].detail, too_long
    assert too_long.reward(ScoringMode.FRACTION) == 0.0
    assert sleeper.verdict is Verdict.TIMEOUT and "wall-clock" in sleeper.tests[0].detail


async def test_a_sleeping_program_times_out_at_the_wall_cap(pool: SandboxPool) -> None:
    result = await pool.run(problem(AssertTest("assert nap() == 1"), entry_point="nap"), "import time\ndef nap():\n    time.sleep(60)\n    return 1\n")
    assert result.verdict is Verdict.TIMEOUT and "wall-clock" in result.tests[0].detail


async def test_cpu_time_past_the_limit_is_a_timeout_even_when_it_finishes(pool: SandboxPool) -> None:
    limit = dataclasses.replace(Limits(), time_limit_s=1.0)
    program = "import time\ndef work():\n    began = time.process_time()\n    while time.process_time() - began < 1.3:\n        pass\n    return 42\n"
    result = await pool.run(problem(AssertTest("assert work() == 42"), entry_point="work", limits=limit), program)
    assert result.verdict is Verdict.TIMEOUT and "CPU" in result.tests[0].detail


# -- found by a red-team reading of the design ------------------------------------------------

STEAL = code("""
    import os, re
    def count_primes(n):
        with open("/proc/self/maps") as maps:
            spans = [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in maps if line.split()[1].startswith("r")]
        mem = open("/proc/self/mem", "rb", buffering=0)
        for start, end in spans:
            try:
                mem.seek(start)
                data = mem.read(min(end - start, 1 << 26))
            except (OSError, ValueError, OverflowError):
                continue
            for found in re.finditer(rb"def count_primes\\(n\\):\\n(?:    [ -~]*\\n)+", data):
                source = found.group().decode()
                if "maps" in source:
                    continue  # this very program
                space = {}
                try:
                    exec(source, space)
                    return space["count_primes"](n)
                except Exception:
                    continue
        return -1
""")
HONEST_PRIMES = "def count_primes(n):\n    return sum(all(k % d for d in range(2, int(k ** 0.5) + 1)) for k in range(2, n))\n"


async def test_a_program_cannot_lift_an_earlier_programs_answer_from_memory(single_pool: SandboxPool) -> None:
    """Processes are forked from a clean zygote, not from the runner, whose heap holds earlier
    jobs' programs: a group's later program finds none of its earlier ones in its own memory."""
    p = problem(AssertTest("assert count_primes(10) == 4"), call([1000], 168), entry_point="count_primes")
    assert (await single_pool.run(p, HONEST_PRIMES)).verdict is Verdict.PASSED
    await assert_not_rewarded(single_pool, p, STEAL)


async def test_stop_iteration_from_the_program_does_not_end_the_tests_loop(pool: SandboxPool) -> None:
    for program in ("def f(x):\n    raise StopIteration\n", "class StopIteration(Exception):\n    pass\ndef f(x):\n    raise StopIteration\n"):
        for test in ("assert all(map(lambda x: f(x) == x * 2, [1, 2, 3]))", "for a, b in zip([1, 2], map(f, [1, 2])):\n    assert a * 2 == b"):
            await assert_not_rewarded(pool, problem(AssertTest(test), entry_point="f"), program)


async def test_cpu_burnt_in_child_processes_counts(pool: SandboxPool) -> None:
    offload = code("""
        import os, time
        def burn():
            began = time.process_time()
            while time.process_time() - began < 0.8:
                pass
        def work():
            children = []
            for _ in range(2):
                pid = os.fork()
                if pid == 0:
                    burn()
                    os._exit(0)
                children.append(pid)
            for pid in children:
                os.waitpid(pid, 0)
            return 42
    """)
    result = await pool.run(problem(AssertTest("assert work() == 42"), entry_point="work"), offload)  # 1.6 s of CPU, 1 s limit
    assert result.verdict is Verdict.TIMEOUT, result
    # Children that the kernel reaps at once (their parent ignores SIGCHLD) leave no trace in
    # /proc nor in the parent's times: the container's CPU counter still has them.
    unwaited = code("""
        import os, signal, time
        def work():
            signal.signal(signal.SIGCHLD, signal.SIG_IGN)
            for _ in range(4):  # one after the other: at no moment is more than 0.4 s of it alive
                if os.fork() == 0:
                    began = time.process_time()
                    while time.process_time() - began < 0.4:
                        pass
                    os._exit(0)
                time.sleep(0.5)
            return 42
    """)
    result = await pool.run(problem(AssertTest("assert work() == 42"), entry_point="work"), unwaited)
    assert result.verdict is Verdict.TIMEOUT, result


async def test_a_hash_flooding_reply_is_a_quick_failure_never_a_sandbox_error(pool: SandboxPool) -> None:
    flood = "def answer():\n    return {k * (2 ** 61 - 1) for k in range(1, 44000)}\n"
    p = problem(*[AssertTest("assert answer() == 42")] * 12, call([], 42), entry_point="answer")
    await assert_not_rewarded(pool, p, flood)


async def test_the_setup_codes_exception_classes_cross(pool: SandboxPool) -> None:
    setup = "class InvalidInput(ValueError):\n    pass\n"
    program = "def check(x):\n    if x < 0:\n        raise InvalidInput('negative')\n    return x\n"
    for handler in ("InvalidInput", "ValueError"):
        test = AssertTest(f"try:\n    check(-1)\n    assert False\nexcept {handler}:\n    pass")
        result = await pool.run(problem(test, entry_point="check", setup_code=setup), program)
        assert result.verdict is Verdict.PASSED, result.tests[0].detail


MBPP_927 = {  # the shape of MBPP task 927: the test setup builds its input from the program's class
    "task_id": 927,
    "test_setup_code": "root = Node(1)\nroot.left = Node(2)\nroot.left.left = Node(3)\n",
    "test_list": ["assert max_height(root) == 3", "assert max_height(None) == 0"],
}
TREE = "class Node:\n    def __init__(self, data):\n        self.data, self.left, self.right = data, None, None\n"


async def test_mbpp_setup_code_that_uses_the_programs_class_is_judged_not_a_sandbox_error(pool: SandboxPool) -> None:
    from reward_api.datasets import mbpp_problem
    from reward_server.convert import to_problem

    p = to_problem(mbpp_problem(MBPP_927))
    right = TREE + "def max_height(node):\n    return 0 if node is None else 1 + max(max_height(node.left), max_height(node.right))\n"
    wrong = TREE + "def max_height(node):\n    return 0 if node is None else 1\n"
    results = await asyncio.gather(pool.run(p, right), pool.run(p, wrong))
    assert [r.verdict for r in results] == [Verdict.PASSED, Verdict.FAILED], results


@pytest.mark.parametrize(
    ("setter", "expected"),
    [
        ("raise AssertionError('passed')", Verdict.RUNTIME_ERROR),  # the program's AssertionError is not the test's
        ("raise SystemExit(0)", Verdict.RUNTIME_ERROR),
        ("import os; os._exit(0)", Verdict.RUNTIME_ERROR),
        ("while True: pass", Verdict.TIMEOUT),
    ],
)
async def test_a_hostile_attribute_setter_does_not_pass(pool: SandboxPool, setter: str, expected: Verdict) -> None:
    program = f"class Box:\n    def __setattr__(self, name, value):\n        {setter}\n"
    p = problem(AssertTest("b = Box()\nb.x = 1\nassert True"), limits=Limits(time_limit_s=1.0))
    result = await pool.run(p, program)
    assert result.verdict is expected, result
