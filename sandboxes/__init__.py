"""Sandboxed execution of model-written Python programs against unit tests.

    async with SandboxPool(SandboxConfig(workers=2)) as pool:
        result = await pool.run(problem, code)   # ProgramResult: verdict per test, reward()

Threat model
============

The programs are written by a policy that is *rewarded for passing*. Expect accidents
(infinite loops, memory blow-ups, fork storms, floods of output) and reward hacks (early
`exit(0)`, printed fake results, writes to inherited descriptors, always-equal objects,
background processes that tamper with later jobs, files left for the next job, reading the
expected answers out of memory).

Covered, each by an adversarial test in `tests/test_sandbox_attacks.py`:

- Containment, per container: no network (no interface but loopback), read-only root file
  system, one size-limited `noexec` tmpfs (/tmp) as the only writable place, no /dev/shm
  (`ipc=none`), all capabilities dropped, `no-new-privileges`, Docker's default seccomp
  profile, non-root uid 10001, pids limit (fork bombs), memory limit with swap equal to
  memory, CPU quota, nofile/fsize/core ulimits, a clean environment, nothing of the host
  mounted, no container log written to disk.
- Per program, in the runner (PID 1 of the container): a fresh forked process with its own
  session, pipes and working directory, every other descriptor closed. Its `assert` and
  `call` tests run in it one after the other, each in a fresh namespace where setup_code and
  the program run again; a test that crashes, exits or hangs ends that process, gets its own
  verdict, and the remaining tests continue in a new process (`io` tests get one each).
  Per-test wall-clock limit (SIGKILL), CPU-time limit (RLIMIT_CPU), address-space limit
  (RLIMIT_AS), output caps on stdout, stderr and the report pipe; every other process in the
  container killed after each process and the tmpfs emptied after each job, so nothing
  survives into the next job. (State a test leaves outside the program's namespace, in an
  imported module say, is seen by the program's later tests: never by another program.)
- Verdicts are decided outside the untrusted process. The test process reports through a
  private pipe with a per-test nonce; a process that ends without that report (exit(0),
  os._exit(0), a thread that exits, a crash) has not passed. `io` and `call` outputs are
  compared on the host: expected outputs never enter the sandbox, so a program cannot find
  them in memory. In `assert` tests, every operand of a comparison must be plain data
  (built-in types, or stdlib classes whose comparison methods are unchanged since before
  the program ran), which defeats always-equal objects.
- The runner is non-dumpable (no ptrace, no /proc/1/mem), ignores signals from programs
  (PID 1 without handlers), and checks after each job that nobody changed its rlimits,
  priority, scheduling or CPU affinity (allowed between processes of one uid): a container
  whose runner was tampered with, or that has stray processes, is replaced.
- Infrastructure faults (a container killed, Docker unreachable, a silent runner) are never
  verdicts about the program: the job is re-run once elsewhere, else SANDBOX_ERROR, which
  carries no reward.

Not covered:

- A kernel exploit through the container boundary. The `runsc` runtime (gVisor) interposes
  its own kernel; it is experimental here (see README: a fork bomb kills the gVisor sandbox,
  which the pool reports as SANDBOX_ERROR and replaces).
- In `assert` tests the program's functions run in the same process as the test code, so a
  program written against this runner's internals could inspect the calling frame or forge
  the harness's report (it can read the nonce from its own memory). Generic hacks are
  covered; a targeted one is not. `call` and `io` tests do not have this weakness: their
  verdict is computed outside, from outputs the program cannot fake without knowing the
  expected answer.
"""

from .config import SandboxConfig
from .container import SandboxFault
from .pool import PoolListener, SandboxPool
from .types import AssertTest, CallTest, IoTest, Limits, Problem, ProgramResult, ScoringMode, TestResult, Verdict

__all__ = [
    "AssertTest",
    "CallTest",
    "IoTest",
    "Limits",
    "PoolListener",
    "Problem",
    "ProgramResult",
    "SandboxConfig",
    "SandboxFault",
    "SandboxPool",
    "ScoringMode",
    "TestResult",
    "Verdict",
]
