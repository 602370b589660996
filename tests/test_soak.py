"""Soak: a long interleaving of right, wrong and adversarial programs through a `reward-server`
process, over the trainer's path (ScoreSession streams). What must hold at the end: every
right program PASSED, every wrong one FAILED, no attack PASSED, the server still holds exactly
its warm containers and removes them all at exit, and it left no temporary file on the host
(its TMPDIR is a private directory that must be empty).

The default run is 48 groups of 8 (384 programs, 48 attacks); under the `soak` marker
(CODEREWARD_SOAK=1) 375 groups (3000 programs, 375 attacks).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import docker
import pytest

from reward_api.client import AsyncRewardClient
from reward_api.types import Verdict, assert_test, make_problem, make_request

from .server_proc import ServerProcess, wait_for
from .test_sandbox_attacks import ALWAYS_EQUAL, EARLY_EXITS, FAKE_REPORTS, code

pytestmark = pytest.mark.docker

SOAK = [
    pytest.mark.soak,
    pytest.mark.skipif(os.environ.get("CODEREWARD_SOAK") != "1", reason="long run: set CODEREWARD_SOAK=1 (.ci/run does when time allows)"),
]
SESSIONS = 4

# Each one's honest answer is wrong (`answer()` is not 42): PASSED would mean the sandbox was fooled.
ATTACKS: dict[str, str] = {
    "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "memory bomb": "blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))\n",
    "loop ignoring SIGALRM": "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n",
    "stdout flood": "while True:\n    print('x' * 4096)\n",
    "tmpfs filled": code("""
        with open("/tmp/fill.bin", "wb") as f:
            try:
                while True:
                    f.write(b"\\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        def answer():
            return 0
    """),
    "kill everything": code("""
        import os, signal
        for target in (-1, 1, os.getppid()):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass
        def answer():
            return 0
    """),
    "tampering daemon": code("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                while True:
                    try:
                        os.kill(-1, 9)
                    except OSError:
                        pass
                    time.sleep(0.001)
            os._exit(0)
        def answer():
            return 0
    """),
    "stop every process": code("""
        import os, signal
        for pid in os.listdir("/proc"):
            if pid.isdigit() and int(pid) != os.getpid():
                try:
                    os.kill(int(pid), signal.SIGSTOP)
                except OSError:
                    pass
        def answer():
            return 0
    """),
    "poisoned file": "open('/tmp/answer.py', 'w').write('def answer():\\n    return 42\\n')\ndef answer():\n    return 0\n",
    "always equal": ALWAYS_EQUAL,
    **{f"early exit: {name}": program for name, program in EARLY_EXITS.items()},
    **{f"fake report: {name}": program for name, program in FAKE_REPORTS.items()},
}
ANSWER = make_problem(
    "answer", [assert_test("assert answer() == 42"), assert_test("assert answer() + 1 == 43")], entry_point="answer", time_limit_s=1.0
)


def soak_group(index: int) -> tuple[list[str], list[str]]:
    """Eight programs: one attack, then right and wrong ones in turn (salted: all distinct)."""
    names = list(ATTACKS)
    attack = names[index % len(names)]
    codes = [ATTACKS[attack] + f"\n# group {index}\n"]
    kinds = [attack]
    for k in range(7):
        right = (index + k) % 2 == 0
        codes.append(f"def answer():\n    return {42 if right else 41}  # {index}/{k}\n")
        kinds.append("right" if right else "wrong")
    return codes, kinds


@pytest.mark.parametrize("groups", [pytest.param(48, id="384-programs"), pytest.param(375, id="3000-programs", marks=SOAK)])
async def test_soak_right_programs_pass_attacks_never_do_nothing_leaks(
    sandbox_image: str, docker_client: docker.DockerClient, groups: int
) -> None:
    tmpdir = Path(tempfile.mkdtemp(prefix="soak-tmp-"))
    server = ServerProcess(sandbox_image, workers=2, env={"TMPDIR": str(tmpdir)})
    try:
        fds_before = server.open_fds()
        verdicts: dict[str, Counter[Verdict]] = {}

        async def session_worker(worker: int) -> None:
            async with AsyncRewardClient(server.target, retry_timeout_s=30.0, timeout_s=600.0) as client, client.session() as session:
                mine = [(i, *soak_group(i)) for i in range(worker, groups, SESSIONS)]
                futures = [session.submit(make_request(ANSWER, codes, request_id=f"g{i}", fail_fast=True)) for i, codes, _ in mine]
                for future, (_, _, kinds) in zip(futures, mine):
                    for result, kind in zip((await future).results, kinds):
                        key = kind if kind in ("right", "wrong") else "attack"
                        verdicts.setdefault(key, Counter())[result.verdict] += 1
                        if key == "attack":
                            verdicts.setdefault(kind, Counter())[result.verdict] += 1

        await asyncio.gather(*(session_worker(w) for w in range(SESSIONS)))
        summary = {k: {verdict.value: n for verdict, n in v.items()} for k, v in sorted(verdicts.items())}
        print(f"\n{groups * 8} programs: {summary}")
        assert set(verdicts["right"]) == {Verdict.PASSED}, summary
        assert set(verdicts["wrong"]) == {Verdict.FAILED}, summary
        assert verdicts["right"].total() + verdicts["wrong"].total() == groups * 7
        assert verdicts["attack"].total() == groups and Verdict.PASSED not in verdicts["attack"], summary
        # Exactly its warm containers, once replacements of recycled ones have started.
        wait_for(lambda: len(server.containers(docker_client)) == 2, 30, what="two sandbox containers")
        assert server.open_fds() <= fds_before + 16  # the Docker SDK pools up to 10 sockets to the engine; no leak per job
        assert server.stop() == 0
        assert server.containers(docker_client) == []
        assert list(tmpdir.iterdir()) == []
    finally:
        server.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)
