"""Sandboxed execution of model-written programs against unit tests: Python (assert, call and
io tests), and C++, Java and JavaScript (io tests; `languages.py` holds one entry per language).

    async with SandboxPool(SandboxConfig(workers=2)) as pool:
        result = await pool.run(problem, code)   # ProgramResult: verdict per test, reward()

Threat model
============

The programs are written by a policy that is *rewarded for passing*. Expect accidents
(infinite loops, memory blow-ups, fork storms, floods of output) and reward hacks (early
`exit(0)`, printed or forged reports, always-equal objects, shadowed builtins and helpers,
background processes that tamper with later jobs, files or IPC objects left for the next
job, reading the expected answers out of memory, values that crash the judge or the host).

What holds, each with adversarial tests (`tests/test_sandbox_attacks.py`,
`tests/test_trusted_judging.py`, `tests/test_pool.py`):

- Containment, per container: no network (no interface but loopback), read-only root file
  system, one size-limited `noexec` tmpfs (/tmp) as the only writable place, no /dev/shm
  (`ipc=none`), System V IPC and POSIX message queues impossible (namespaced sysctls at 0),
  Docker's default seccomp profile, `no-new-privileges`, all capabilities dropped but the
  seven the runner needs (SETUID, SETGID, SETPCAP, KILL, CHOWN, FOWNER, DAC_OVERRIDE), pids
  limit (fork bombs), memory limit with swap equal to memory, CPU quota, nofile/fsize/core
  ulimits, a clean environment, nothing of the host mounted, no container log on disk.
- Three principals per container: the runner (PID 1, root with those capabilities), the
  judge (uid 10002) and the program (uid 10001). Each process is forked, as root, from a
  zygote that the runner started before reading any job (so no program's process inherits
  earlier jobs' programs, outputs or results from the runner's heap), and drops to its uid
  with no capability left, bounding set included, once it has its order. So the program can neither signal, stop, trace, `prlimit` nor read the memory of the
  judge, the runner or a waiting spare; the judge and the runner are not dumpable.
- Trusted judging. Assert tests run in the judge, never in the program's process: setup code
  runs in both (the program may rely on it), test code only in the judge. The judge reaches
  the program's functions over a socket carrying typed JSON (`runner/codec.py`), decoded by
  trusted code into plain values (tuples, sets, dicts with any keys, bytes, Fraction,
  Decimal, complex, and dataclasses and named tuples as trusted records); anything else stays
  in the program's process as an opaque reference, equal only to itself. So an always-equal
  object, a proxy, a subclass with its own `__eq__`, a forged report or a patched `json` is a
  wrong answer. The names a test reads come from the test, the setup code (HumanEval's
  helpers go there), builtins and the standard library; only the entry point and the
  problem's `program_names` come from the program (a problem naming neither, MBPP's format,
  gets the other free names from it). The program's exceptions are re-raised in the judge as
  builtin classes of the same name, so `except ValueError` works in a test. What a test passes
  to the program's functions or assigns to its objects' attributes crosses to the program
  (plain data, or a reference to one of its objects): a test that hands over its expected
  value (`obj.x = expected`) shows it to the program. (MBPP's test setup code, which builds
  inputs from the program's classes, runs after the program as part of each test.)
- Expected values never enter a process the program can read: `io` and `call` outputs are
  compared on the host; assert tests' code reaches the judge in a memfd that the runner fills
  and the judge's texts (which quote the test) leave in another, both copied through one
  small buffer that the runner zeroes, so the runner's heap, which every program process
  inherits, never holds them (`test_the_expected_value_is_nowhere_in_the_programs_reach`).
- Limits per test: CPU time of the program's processes (every thread of every process it
  started, read from /proc by the runner; RLIMIT_CPU as a backstop), a wall-clock cap of `protocol.WALL_FACTOR` × the limit
  + `WALL_SLACK_S` (3× + 1 s), address space (RLIMIT_AS), output caps on stdout, stderr and
  the reply to the judge. A verdict does not depend on load: CPU time does not grow while a
  process waits for a core, and the wall clock leaves out the time spent waiting for one:
  between two looks of the runner (every 50 ms at most), the longest run-queue delay of one
  thread of the program's processes or of the judge (`/proc/PID/task/TID/schedstat`), summed
  over the looks, since processes also wait one after another (a compiler's passes). A
  program can make its own threads wait (SCHED_IDLE, pinned to the judge's CPU) and so stretch
  its wall clock, but only up to `OVERLOAD_FACTOR` × its cap in real time, where the test is a
  TIMEOUT: waiting is never taken as proof of an overloaded machine, so a program cannot turn a
  wrong answer into a masked SANDBOX_ERROR. A container held to a fraction q of a core
  (`container_cpus`) needs 1/q seconds for each second of CPU, so there that real-time cap is
  1/q times longer (the runner reads q from its cgroup, the host's job deadline follows).
- Verdicts are the runner's, from what it sees itself (CPU time, exit status, the OOM
  killer's count, output against the caps) and the judge's report; nothing the program
  writes is read as a verdict. A process that exits, even with status 0, during a test has
  not passed. Comparisons never raise on any value (`sandboxes/compare.py`); an expected
  integer matches only that integer.
- Between jobs the runner kills every process but the judge and its spare (`kill(-1)` from
  PID 1 reaches exactly the container), wipes the tmpfs, checks that no IPC object and no
  change to its own rlimits, priority, scheduling or affinity is left, and says `ready`; the
  host gives a container a job only after `ready`. A container that cannot be made clean
  retires and is replaced.
- Compiled and other languages (`languages.py`, `runner/build.py`; adversarial tests in
  `tests/test_languages.py`, per language). The compiler is as untrusted as the program: it
  runs in the container as the program's uid, in its own directory of the tmpfs, under its
  own CPU, address-space, file-size and output limits (a compile that breaks one is the
  program's COMPILE_ERROR, reward 0; the detail holds the compiler's first errors). What it
  leaves is read without following links, bounded, after whatever it left running is killed,
  and installed root-owned and read-only in /tmp/build; a native executable runs from a
  sealed, read-only memfd, so /tmp stays `noexec`. Each test then runs the artefact in a
  fresh process exactly as a Python program's process runs: same uid, no capability, same
  CPU and wall clocks (the JVM's and Node's start-up get a fixed CPU allowance, the
  language's `startup_cpu_s`), same output caps, the same kill and sweep after the job. The
  same properties hold: raw syscalls from inline assembly meet the same uid, capabilities and
  seccomp (setuid, ptrace, kill of another process, mount, unshare, chroot: refused), and
  exiting 0 early or printing a report is a wrong answer. Memory: RLIMIT_AS is the test's
  limit plus the language's `run_address_space_mb`; for the JVM and V8, which reserve far
  more address space than they use, that allowance is large (2 GB, 1 GB) and their heap is
  capped at the test's limit by their own flag; the container's memory cgroup caps what is
  really used. So for Java and JavaScript the memory limit bounds the heap, not every byte.
- Checkers (`checkers.py`, adversarial tests in `tests/test_checkers.py`). A problem's
  checker runs as the program of other jobs, after the program's job, on a container that has
  been cleaned (or replaced) since: the program never holds the answer file nor the checker,
  and nothing it left running reaches them. Before any program's output, the checker must
  accept each test's expected answer and reject an empty output (where the answer is not
  blank), in jobs that hold no program's output; a checker that fails this makes the test
  SANDBOX_ERROR, and one that passed it and then fails on a program's output (a crash, its
  limits, testlib's `_fail`) rejects that output, so no output turns a wrong answer into
  SANDBOX_ERROR. The checker is trusted with the program's output as data: a checker that
  executes it (`eval`) can be made to accept anything.
- The binary cache (`binaries.py`) lives in the pool's process on the host, which no program
  reaches: an identical source (same language and compile command) runs the artefact that
  its own compile made, sent with the job; no program can change another's.
- Infrastructure faults (a container killed, Docker unreachable, a silent runner, a judge
  that dies) are never verdicts about the program: the job is re-run once elsewhere, else
  SANDBOX_ERROR, which carries no reward. No trick of a program's gets SANDBOX_ERROR.

What does not hold:

- A kernel exploit through the container boundary. The `runsc` runtime (gVisor) interposes
  its own kernel; it is experimental here (see README: a fork bomb kills the gVisor sandbox,
  which the pool reports as SANDBOX_ERROR and replaces).
- A program's later tests in one batch share its process: state it leaves (a thread, a
  patched module) is seen by its own later tests, never by another program's.
- Side channels through /proc: a program can read the judge's CPU and memory counters
  (/proc/<pid>/stat is world-readable, and hiding it needs a /proc mount option the container
  cannot set), which may tell it whether its last answer passed, and it can pass bits to the
  next program on the same container (the pid counter, say). A policy would have to
  coordinate across samples to use that; nothing else of a job reaches the next.
- The judge spends CPU decoding what the program sends (bounded by the reply cap, hash
  flooding refused); that time is charged to the wall clock, not to the program's CPU.
- A compiled program's tests in one job share /tmp/job (as a Python program's io tests do):
  a test can leave files that its own later tests read; the next job never sees them.
- Every toolchain is in every container: a Python program can run g++, and a program can
  execute code it generated from a memfd (as a Python program can with ctypes). Neither
  adds a privilege: what runs is still the program's uid under its limits.
- A test that passes its own mutable arguments sees the program's in-place changes (as in
  plain Python): a test that computes its expected value from an argument after the call
  can be fooled by a program that rewrites that argument. Write tests that don't.
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
