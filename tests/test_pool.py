"""The warm pool: start-up, hardening, verdicts of every test form, recycling, faults,
cancellation, orphans. Real containers throughout."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import textwrap
from typing import Any

import docker
import pytest

from sandboxes.config import CONTAINER_LABEL, SandboxConfig
from sandboxes.pool import PoolListener, SandboxPool
from sandboxes.types import AssertTest, Limits, ScoringMode, Verdict

from .helpers import ADD_TESTS, GOOD_ADD, assert_pool_healthy, call, io, problem

pytestmark = pytest.mark.docker

# Processes started before this test's own (the runner, PID 1, aside). Newer ones are the
# runner's spare for the next test.
# Processes of the program's uid older than this one (the judge, older still, has its own uid).
OLDER_PROCESSES = (
    "import os\n"
    "def uid(pid):\n"
    "    try:\n"
    "        return int(next(l for l in open(f'/proc/{pid}/status') if l.startswith('Uid:')).split()[1])\n"
    "    except OSError:\n"
    "        return -1\n"
    "def others():\n"
    "    return [p for p in os.listdir('/proc') if p.isdigit() and 1 < int(p) < os.getpid() and uid(p) == os.getuid()]\n"
)


class Recorder(PoolListener):
    def __init__(self) -> None:
        self.started = 0
        self.retired: list[str] = []
        self.sandbox_errors: list[str] = []

    def container_started(self, seconds: float) -> None:
        self.started += 1

    def container_retired(self, reason: str) -> None:
        self.retired.append(reason)

    def sandbox_error(self, detail: str) -> None:
        self.sandbox_errors.append(detail)


async def wait_until(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def code(text: str) -> str:
    return textwrap.dedent(text).lstrip()


async def test_every_container_is_hardened(pool: SandboxPool, docker_client: docker.DockerClient) -> None:
    ids = [c["Id"] for c in docker_client.api.containers(filters={"label": f"{CONTAINER_LABEL}={pool.config.owner}"})]
    assert len(ids) == pool.size == 2
    for cid in ids:
        info = docker_client.api.inspect_container(cid)
        host = info["HostConfig"]
        assert host["NetworkMode"] == "none"
        assert host["ReadonlyRootfs"] is True
        # The runner alone holds these; the program and the judge run without any (see below).
        assert host["CapDrop"] == ["ALL"] and set(host["CapAdd"]) == {"SETUID", "SETGID", "SETPCAP", "KILL", "CHOWN", "FOWNER", "DAC_OVERRIDE"}
        assert host["Sysctls"]["kernel.msgmni"] == "0" and host["Sysctls"]["kernel.shmall"] == "0"
        assert "no-new-privileges:true" in host["SecurityOpt"]
        assert not any("seccomp=unconfined" in opt for opt in host["SecurityOpt"])
        assert host["Privileged"] is False
        assert host["PidsLimit"] == pool.config.pids_limit
        assert host["Memory"] == host["MemorySwap"] == pool.config.container_memory_mb << 20
        assert host["NanoCpus"] == pool.config.nano_cpus
        assert host["IpcMode"] == "none"
        assert list(host["Tmpfs"]) == ["/tmp"] and f"size={pool.config.tmpfs_mb}m" in host["Tmpfs"]["/tmp"]
        assert not host["Binds"] and not info["Mounts"]
        assert {u["Name"] for u in host["Ulimits"]} >= {"nofile", "fsize", "core"}
        assert info["Config"]["User"] == "0:0"


CGROUP_QUOTA = code("""
    import os
    if os.path.exists("/sys/fs/cgroup/cpu.max"):  # cgroup v2
        print(open("/sys/fs/cgroup/cpu.max").read().strip())
    else:
        folder = next(f for f in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct") if os.path.isdir(f))
        print(open(f"{folder}/cpu.cfs_quota_us").read().strip(), open(f"{folder}/cpu.cfs_period_us").read().strip())
""")


async def test_the_runner_reads_the_quota_the_host_times_jobs_by(sandbox_image: str, docker_client: docker.DockerClient) -> None:
    """The host's deadline for a job and the runner's real-time cap both grow by 1/quota; the
    runner reads its quota from the container's cgroup, the host from its config: the two must
    agree (0.0157 cores is 15699999 nano-CPUs when truncated, not 15700000)."""
    config = SandboxConfig(image=sandbox_image, workers=1, container_cpus=0.0157)
    expected = f"{round(config.quota_cpus * 100_000)} 100000\n"  # quota and period, in µs
    async with SandboxPool(config, client=docker_client) as pool:
        result = await pool.run(problem(io("", expected)), CGROUP_QUOTA)
    assert result.verdict is Verdict.PASSED, result.tests[0].detail


async def test_the_program_runs_unprivileged_under_its_own_uid(pool: SandboxPool) -> None:
    probe = """
import os
def answer():
    status = open("/proc/self/status").read()
    caps = [line.split()[1] for line in status.splitlines() if line.startswith(("CapEff", "CapPrm", "CapAmb"))]
    return [os.getuid(), os.geteuid(), os.getgid(), os.getgroups(), caps]
"""
    expected = [10001, 10001, 10001, [], ["0000000000000000"] * 3]
    result = await pool.run(problem(call([], expected), entry_point="answer"), probe)
    assert result.verdict is Verdict.PASSED, result.tests[0].detail


async def test_the_three_test_forms_and_their_verdicts(pool: SandboxPool) -> None:
    program = "import sys\ndef add(a, b):\n    return a + b\nif __name__ == '__main__':\n    a, b = map(int, sys.stdin.read().split())\n    print(add(a, b))\n"
    checks = problem(
        AssertTest("assert add(2, 2) == 4"),
        io("2 3\n", "5\n"),
        call([2, 3], 5),
        call([0.1, 0.2], 0.3),
        call([[1], [2]], [1, 2]),
        io("2 3\n", "6\n"),
        call([2, 3], 6),
        AssertTest("assert add(2, 2) == 5"),
        entry_point="add",
    )
    result = await pool.run(checks, program)
    assert [t.verdict for t in result.tests] == [Verdict.PASSED] * 5 + [Verdict.FAILED] * 3
    assert result.tests[5].detail == "line 1: expected '6', got '5'"
    assert result.tests[6].detail == "expected 6, got 5"
    assert "assert add(2, 2) == 5" in result.tests[7].detail
    assert (result.passed, result.total) == (5, 8)
    assert result.reward(ScoringMode.FRACTION) == 5 / 8
    assert result.reward(ScoringMode.ALL_OR_NOTHING) == 0.0


async def test_tuples_are_lists_and_rigged_returns_fail_in_call_tests(pool: SandboxPool) -> None:
    program = "def pair(x):\n    return (x, {x})\n"
    assert (await pool.run(problem(call([1], [1, [1]]), entry_point="pair"), program)).verdict is Verdict.PASSED
    missing = await pool.run(problem(call([1], 1), entry_point="nope"), program)
    assert missing.verdict is Verdict.RUNTIME_ERROR and "'nope' is not defined" in missing.tests[0].detail


async def test_syntax_error_and_fail_fast(pool: SandboxPool) -> None:
    broken = await pool.run(problem(*ADD_TESTS), "def add(a, b) return a + b\n")
    assert [t.verdict for t in broken.tests] == [Verdict.SYNTAX_ERROR] * 2
    checks = problem(AssertTest("assert add(1, 1) == 3"), *ADD_TESTS)
    fast = await pool.run(checks, GOOD_ADD, fail_fast=True)
    assert [t.verdict for t in fast.tests] == [Verdict.FAILED, Verdict.SKIPPED, Verdict.SKIPPED]
    slow = await pool.run(checks, GOOD_ADD)
    assert [t.verdict for t in slow.tests] == [Verdict.FAILED, Verdict.PASSED, Verdict.PASSED]


async def test_setup_code_runs_before_the_program(pool: SandboxPool) -> None:
    program = "def total(xs: List[int]) -> int:\n    return sum(xs)\n"
    checks = problem(AssertTest("assert total([1, 2]) == 3"), setup_code="from typing import List")
    assert (await pool.run(checks, program)).verdict is Verdict.PASSED
    assert (await pool.run(problem(AssertTest("assert total([1, 2]) == 3")), program)).verdict is Verdict.RUNTIME_ERROR


async def test_limits_above_the_caps_are_refused(pool: SandboxPool) -> None:
    with pytest.raises(ValueError, match="time_limit_s=999"):
        await pool.run(problem(*ADD_TESTS, limits=Limits(time_limit_s=999)), GOOD_ADD)


async def test_many_concurrent_jobs_all_get_their_own_answer(pool: SandboxPool) -> None:
    checks = problem(call([], 0), entry_point="f")
    codes = [f"def f():\n    return {i % 7}\n" for i in range(60)]
    results = await asyncio.gather(*(pool.run(checks, c) for c in codes))
    assert [r.verdict is Verdict.PASSED for r in results] == [i % 7 == 0 for i in range(60)]


async def test_containers_are_recycled_after_k_jobs(fast_config: SandboxConfig, docker_client: docker.DockerClient) -> None:
    recorder = Recorder()
    async with SandboxPool(dataclasses.replace(fast_config, jobs_per_container=3), client=docker_client, listener=recorder) as pool:
        for _ in range(10):
            assert (await pool.run(problem(*ADD_TESTS), GOOD_ADD)).verdict is Verdict.PASSED
        await wait_until(lambda: pool.size == 2)
        assert recorder.retired.count("job_count") >= 2
        assert recorder.started >= 2 + recorder.retired.count("job_count") - 1


async def test_a_container_killed_mid_job_never_yields_a_wrong_answer(
    fast_config: SandboxConfig, docker_client: docker.DockerClient
) -> None:
    recorder = Recorder()
    async with SandboxPool(fast_config, client=docker_client, listener=recorder) as pool:
        program = "import time\ntime.sleep(0.5)\n" + GOOD_ADD
        job = asyncio.create_task(pool.run(problem(*ADD_TESTS), program))
        await wait_until(lambda: pool.busy == 1)
        busy = [s for s in pool._live if s.jobs == 1]
        assert len(busy) == 1
        await asyncio.to_thread(docker_client.api.kill, busy[0].container.id)
        result = await job
        assert result.verdict in (Verdict.PASSED, Verdict.SANDBOX_ERROR)
        assert result.verdict is Verdict.PASSED  # re-run on the healthy container
        assert "crashed" in recorder.retired
        await wait_until(lambda: pool.size == 2)
        await assert_pool_healthy(pool)


async def test_every_container_dying_gives_sandbox_error_not_a_verdict(
    fast_config: SandboxConfig, docker_client: docker.DockerClient
) -> None:
    recorder = Recorder()
    async with SandboxPool(dataclasses.replace(fast_config, workers=1), client=docker_client, listener=recorder) as pool:
        # The program takes down its own container (the runner is PID 1: killing every
        # container process from the host is the only way), twice: both attempts fault.
        program = "import time\ntime.sleep(0.6)\n" + GOOD_ADD

        async def killer() -> None:
            killed: set[str] = set()

            def running() -> list[Any]:  # the container the job is on now, not the one just killed
                return [s for s in pool._live if s.container.id not in killed and not s.exited.is_set()]

            for _ in range(2):
                await wait_until(lambda: pool.busy == 1 and bool(running()))
                sandbox = running()[0]
                killed.add(sandbox.container.id)
                await asyncio.to_thread(docker_client.api.kill, sandbox.container.id)
                await sandbox.exited.wait()

        kill_task = asyncio.create_task(killer())
        result = await pool.run(problem(*ADD_TESTS), program)
        await kill_task
        assert result.verdict is Verdict.SANDBOX_ERROR
        assert result.reward(ScoringMode.ALL_OR_NOTHING) is None
        assert len(recorder.sandbox_errors) == 1
        await wait_until(lambda: pool.size == 1)
        assert (await pool.run(problem(*ADD_TESTS), GOOD_ADD)).verdict is Verdict.PASSED


async def test_with_no_container_alive_jobs_get_sandbox_error_after_the_outage_timeout(
    fast_config: SandboxConfig, docker_client: docker.DockerClient
) -> None:
    """Containers that cannot start (here: their image is gone; in life: the engine is down)
    leave the pool empty. A job waits `outage_timeout_s` for one, then is answered
    SANDBOX_ERROR (never a verdict); later jobs at once; once a container is back, jobs run."""
    recorder = Recorder()
    config = dataclasses.replace(fast_config, workers=1, outage_timeout_s=1.0)
    async with SandboxPool(config, client=docker_client, listener=recorder) as pool:
        image = pool.image
        pool.image = "codereward-sandbox-python:no-such-tag"  # every replacement fails to start
        sandbox = next(iter(pool._live))
        await asyncio.to_thread(docker_client.api.kill, sandbox.container.id)
        await wait_until(lambda: pool.size == 0)
        waited = await pool.run(problem(*ADD_TESTS), GOOD_ADD)
        assert pool.in_outage
        assert waited.verdict is Verdict.SANDBOX_ERROR and waited.reward(ScoringMode.ALL_OR_NOTHING) is None
        assert "no sandbox container alive" in waited.tests[0].detail, waited
        at_once = await asyncio.wait_for(pool.run(problem(*ADD_TESTS), GOOD_ADD), timeout=30)  # a hang guard
        assert at_once.verdict is Verdict.SANDBOX_ERROR
        assert len(recorder.sandbox_errors) == 2
        pool.image = image  # the next replacement attempt (backoff <= 10 s) succeeds
        await wait_until(lambda: pool.size == 1, timeout=30)
        assert not pool.in_outage
        assert (await pool.run(problem(*ADD_TESTS), GOOD_ADD)).verdict is Verdict.PASSED


async def test_a_job_cancelled_as_a_container_frees_up_gives_the_container_back(single_pool: SandboxPool) -> None:
    """The race a cancelled call can hit: the idle container was taken off the queue for a
    waiting job, and the job is cancelled before it resumes. The container must go back, or
    the pool shrinks for good (it stays alive and counted, never idle again)."""
    sandbox = await single_pool._acquire()  # the only container, held
    waiter = asyncio.create_task(single_pool._acquire())
    for _ in range(3):
        await asyncio.sleep(0)  # the waiter is waiting on the queue
    single_pool._idle.put_nowait(sandbox)
    await asyncio.sleep(0)  # the queue hands it to the waiter's get, which finishes...
    waiter.cancel()  # ...and the job is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert await asyncio.wait_for(single_pool._acquire(), timeout=30) is sandbox  # back in the queue (a hang guard)
    single_pool._idle.put_nowait(sandbox)
    assert (await single_pool.run(problem(*ADD_TESTS), GOOD_ADD)).verdict is Verdict.PASSED


async def test_a_program_cannot_tamper_with_the_runner(single_pool: SandboxPool) -> None:
    """The runner is root and the program is not: the kernel refuses to let it change the
    runner's rlimits, priority or affinity (the runner still checks after every job)."""
    tamper = code("""
        import os, resource
        def attempts():
            refused = []
            for attempt in (
                lambda: resource.prlimit(1, resource.RLIMIT_NOFILE, (16, 16)),
                lambda: os.setpriority(os.PRIO_PROCESS, 1, 19),
                lambda: os.sched_setaffinity(1, {0}),
                lambda: os.kill(1, 19),
            ):
                try:
                    attempt()
                    refused.append(False)
                except PermissionError:
                    refused.append(True)
            return refused
    """)
    result = await single_pool.run(problem(call([], [True, True, True, True]), entry_point="attempts"), tamper)
    assert result.verdict is Verdict.PASSED, result.tests[0].detail
    await assert_pool_healthy(single_pool)


async def test_cancelling_a_job_kills_it_and_keeps_the_container(single_pool: SandboxPool) -> None:
    spin = problem(AssertTest("pass"), limits=Limits(time_limit_s=20))
    job = asyncio.create_task(single_pool.run(spin, "while True:\n    pass\n"))
    await wait_until(lambda: single_pool.busy == 1)
    await asyncio.sleep(0.2)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    probe = OLDER_PROCESSES
    result = await single_pool.run(problem(AssertTest("assert others() == []")), probe)
    assert result.verdict is Verdict.PASSED, result
    assert next(iter(single_pool._live)).jobs == 2  # the same container served both


async def test_orphans_of_a_dead_process_are_swept_at_start(fast_config: SandboxConfig, docker_client: docker.DockerClient) -> None:
    import socket
    import subprocess

    finished = subprocess.Popen(["true"])
    finished.wait()  # reaped: its pid names no live process
    orphan_owner = f"{socket.gethostname()}:{finished.pid}"
    orphan = docker_client.containers.create(fast_config.image, labels={CONTAINER_LABEL: orphan_owner}, entrypoint=["sleep", "60"])
    other_host = docker_client.containers.create(fast_config.image, labels={CONTAINER_LABEL: "elsewhere:1"}, entrypoint=["sleep", "60"])
    try:
        async with SandboxPool(fast_config, client=docker_client):
            remaining = {c["Id"] for c in docker_client.api.containers(all=True, filters={"label": CONTAINER_LABEL})}
            assert orphan.id not in remaining
            assert other_host.id in remaining
    finally:
        other_host.remove(force=True)
        if orphan.id in {c["Id"] for c in docker_client.api.containers(all=True)}:
            orphan.remove(force=True)


async def test_a_missing_image_is_a_clear_error(fast_config: SandboxConfig, docker_client: docker.DockerClient) -> None:
    config = dataclasses.replace(fast_config, image="codereward-sandbox-python:does-not-exist")
    with pytest.raises(RuntimeError, match="codereward-build-image"):
        await SandboxPool(config, client=docker_client).start()


async def test_large_stdin_and_output_round_trip(pool: SandboxPool) -> None:
    numbers = list(range(200_000))
    stdin = "\n".join(map(str, numbers))
    program = "import sys\nfor line in sys.stdin:\n    print(int(line) * 2)\n"
    checks = problem(io(stdin, "\n".join(str(2 * n) for n in numbers)), limits=Limits(output_limit_bytes=4 << 20, time_limit_s=10))
    result = await pool.run(checks, program)
    assert result.verdict is Verdict.PASSED, result.tests[0].detail
    assert json.dumps(result.tests[0].detail) == '""'


async def test_pool_state_counts_busy_idle_and_waiting(single_pool: SandboxPool) -> None:
    slow = problem(AssertTest("import time\ntime.sleep(0.3)"))
    jobs = [asyncio.create_task(single_pool.run(slow, "x = 1\n")) for _ in range(3)]
    await wait_until(lambda: single_pool.busy == 1 and single_pool.waiting == 2)
    assert single_pool.idle == 0 and single_pool.size == 1
    assert all(r.verdict is Verdict.PASSED for r in await asyncio.gather(*jobs))
    assert (single_pool.busy, single_pool.waiting, single_pool.idle) == (0, 0, 1)


async def test_a_test_that_ends_its_process_leaves_the_others_their_verdicts(pool: SandboxPool) -> None:
    """Tests of a program share a process (each in a fresh namespace) until one ends it."""
    program = "import os, ctypes, time\ndef f(x):\n    if x == -1:\n        os._exit(0)\n    if x == -2:\n        ctypes.string_at(0)\n    if x == -3:\n        time.sleep(60)\n    return x\n"
    checks = problem(
        AssertTest("assert f(1) == 1"),
        AssertTest("assert f(-1) == -1"),
        AssertTest("assert f(2) == 2"),
        AssertTest("assert f(-2) == -2"),
        AssertTest("assert f(-3) == -3"),
        AssertTest("assert f(3) == 3"),
        AssertTest("assert f(4) == 5"),
    )
    result = await pool.run(checks, program)
    assert [t.verdict for t in result.tests] == [
        Verdict.PASSED,
        Verdict.RUNTIME_ERROR,
        Verdict.PASSED,
        Verdict.RUNTIME_ERROR,
        Verdict.TIMEOUT,
        Verdict.PASSED,
        Verdict.FAILED,
    ]
    assert "SIGSEGV" in result.tests[3].detail
