"""The languages a problem may be written in, one entry each. Stdlib only: the host (request
validation, the image build, the pool and its binary cache) and the runner inside the
container (`runner/languages.py` is a link to this file) read the same entries.

Adding a language is one `Language(...)` in `LANGUAGES`: the Debian packages its toolchain
needs in the image, the file name the program is written to, the compile command (none for
a language run from its source), the run command, and the limits the toolchain needs. The
image build installs the packages (`sandboxes/image.py`), the runner compiles and runs with
the commands (`runner/build.py`), and nothing else changes.

How a compiled program runs (`runner/build.py`): the compiler runs inside the container as
the program's uid, in its own directory of the tmpfs, under its own CPU, address-space,
file-size and output limits; what it leaves that the entry's `artefacts` name is then copied
by the runner (root) into /tmp/build, owned by root and read-only, and each test runs it in a
fresh process exactly as a Python program's process runs (same uid, rlimits, CPU and wall
clocks, output caps, kill and sweep after). A native executable is run from a sealed memfd
(the tmpfs is `noexec`, and stays so).

Memory, honestly: RLIMIT_AS caps the address space, which is what a test's `memory_limit_mb`
means for Python and for native code (plus `run_address_space_mb` for the C library and the
stack's guard). The JVM and V8 reserve far more virtual memory than they ever touch (code
cache, class space, heap cages), so for them the heap is capped by the runtime's own flag at
the test's memory limit (`-Xmx`, `--max-old-space-size`) and RLIMIT_AS is the memory limit
plus a documented, larger `run_address_space_mb`; the container's memory cgroup (its OOM
kill reads as MEMORY_LIMIT) is the hard backstop on what any process really uses.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass

PYTHON = "python"
TEST_KINDS = ("assert", "io", "call")


@dataclass(frozen=True)
class Language:
    """One language. Commands are argv lists; in them `{build}` is the directory of the
    compiled artefacts (or of the source, for a language without a compile step) and
    `{memory_mb}` the test's memory limit. The compile command runs in its own directory,
    where the program has been written to `source`, and writes into `out/`."""

    name: str
    packages: tuple[str, ...]
    """Debian packages of its toolchain, installed in the sandbox image."""
    source: str
    """File name the program is written to (Java wants `Main.java` for `public class Main`)."""
    run: tuple[str, ...] = ()
    """A test's command. With `executable` set, argv[0] is only its name: the artefact is run."""
    compile: tuple[str, ...] = ()
    """The compile command; empty: the source itself is the artefact (it runs as written)."""
    artefacts: tuple[str, ...] = ()
    """Glob patterns, in `out/`, of what the compile leaves and the runs need."""
    executable: str = ""
    """The artefact that is the program (a native binary); empty: `run[0]` is in the image."""
    test_kinds: tuple[str, ...] = ("io",)
    """Test kinds it can be judged by: stdin → stdout only, unless it is Python."""
    compile_cpu_s: float = 10.0
    """CPU seconds one compile may take (its wall clock: 3× that + 1 s, as for a test)."""
    compile_memory_mb: int = 1024
    """Address space of each of the compiler's processes."""
    compile_output_bytes: int = 64 * 1024
    """Compiler output kept (stdout and stderr each); a compiler that writes more is stopped."""
    run_address_space_mb: int = 64
    """Address space on top of the test's memory limit (see the module's docstring)."""
    startup_cpu_s: float = 0.0
    """CPU time the runtime spends starting, added to each test's CPU limit."""
    memory_errors: tuple[str, ...] = ()
    """Text on stderr that means the runtime ran out of its memory limit: MEMORY_LIMIT."""
    deep_stack: bool = False
    """Stack limit = the test's memory limit (competitive programs recurse deeply)."""
    precompiled_headers: tuple[str, ...] = ()
    """Headers the image precompiles with exactly the compile command's flags."""

    @property
    def compiled(self) -> bool:
        return bool(self.compile)

    @property
    def in_process(self) -> bool:
        """Python: run inside a process forked from the runner, no command at all."""
        return self.name == PYTHON

    @property
    def build_id(self) -> str:
        """What a compile's outcome depends on besides the source (its command, what it keeps,
        and its limits, which can fail it): the binary cache's key is (name, sha256 of the
        source, build_id)."""
        parts = [
            self.name,
            self.compile,
            self.artefacts,
            self.executable,
            self.precompiled_headers,
            self.compile_cpu_s,
            self.compile_memory_mb,
        ]
        text = json.dumps(parts)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def test_cpu_s(self, time_limit_s: float) -> float:
        """CPU limit of one test of this language."""
        return time_limit_s + self.startup_cpu_s

    def run_argv(self, build_dir: str, memory_mb: int) -> list[str]:
        return [arg.format(build=build_dir, memory_mb=memory_mb) for arg in self.run]


# g++'s flags, the usual competitive ones. A precompiled header is only used when the flags
# that matter (standard, optimisation, macros) are the ones it was built with: both use these.
CPP_FLAGS = ("-std=gnu++17", "-O2", "-pipe", "-DONLINE_JUDGE")
# One GC thread, no perf-data file in /tmp, the JDK's class-data archive for a fast start.
JVM_FLAGS = ("-XX:+UseSerialGC", "-XX:-UsePerfData", "-Xshare:auto")

LANGUAGES: dict[str, Language] = {
    language.name: language
    for language in (
        Language(PYTHON, packages=("python3",), source="solution.py", test_kinds=TEST_KINDS),
        Language(
            "cpp",
            packages=("g++",),
            source="main.cpp",
            compile=("/usr/bin/g++", *CPP_FLAGS, "-o", "out/main", "main.cpp"),
            artefacts=("main",),
            executable="main",
            run=("main",),
            compile_cpu_s=10.0,
            compile_memory_mb=1024,  # cc1plus maps the ~100 MB precompiled header
            run_address_space_mb=64,  # the C and C++ libraries' mappings
            memory_errors=("std::bad_alloc",),
            deep_stack=True,
            precompiled_headers=("bits/stdc++.h",),
        ),
        Language(
            "java",  # the program is `public class Main` (or a class Main) with `main`
            packages=("openjdk-17-jdk-headless",),
            source="Main.java",
            # javac is short-lived: the client compiler alone starts it fastest.
            compile=(
                "/usr/bin/javac",
                *(f"-J{f}" for f in JVM_FLAGS),
                "-J-XX:TieredStopAtLevel=1",
                "-J-Xmx256m",
                "-encoding",
                "UTF-8",
                "-d",
                "out",
                "Main.java",
            ),
            artefacts=("*.class",),
            run=(
                "/usr/bin/java",
                *JVM_FLAGS,
                "-Xss64m",
                "-Xmx{memory_mb}m",
                "-XX:ReservedCodeCacheSize=32m",
                "-XX:CompressedClassSpaceSize=64m",
                "-cp",
                "{build}",
                "Main",
            ),
            compile_cpu_s=20.0,
            compile_memory_mb=3072,  # the JVM reserves ~2 GB of address space it never touches
            run_address_space_mb=2048,  # the same, beside the heap (-Xmx = the memory limit)
            startup_cpu_s=0.5,
            memory_errors=("java.lang.OutOfMemoryError",),
        ),
        Language(
            "javascript",  # Node; stdin is fd 0: require("fs").readFileSync(0, "utf8")
            packages=("nodejs",),
            source="main.js",
            run=("/usr/bin/node", "--max-old-space-size={memory_mb}", "{build}/main.js"),
            run_address_space_mb=1024,  # V8's reservations beside its heap (capped at the memory limit)
            startup_cpu_s=0.25,
            memory_errors=("JavaScript heap out of memory",),
        ),
    )
}


def get(name: str) -> Language:
    """The entry of a language name ("" is Python); KeyError for an unknown one."""
    return LANGUAGES[name or PYTHON]


def image_packages() -> list[str]:
    """Every language's packages, for the image build."""
    return sorted({package for language in LANGUAGES.values() for package in language.packages})


def build_precompiled_headers() -> None:
    """Precompile each compiled language's headers next to the header itself (where g++ looks
    for `name.gch` first), with exactly the compile command's flags. Run by the image build."""
    import glob
    import os
    import subprocess

    for language in LANGUAGES.values():
        for header in language.precompiled_headers:
            found = sorted(glob.glob(f"/usr/include/*/c++/*/{header}") + glob.glob(f"/usr/include/c++/*/{header}"))
            if not found:
                raise SystemExit(f"{language.name}: no {header} in the image to precompile")
            path = found[-1]
            flags = [arg for arg in language.compile[1:] if arg.startswith(("-std", "-O", "-D", "-f", "-m"))]
            command = [language.compile[0], *flags, "-x", "c++-header", path, "-o", path + ".gch"]
            print(" ".join(command), file=sys.stderr)
            subprocess.run(command, check=True)
            os.chmod(path + ".gch", 0o644)


if __name__ == "__main__":
    if sys.argv[1:] == ["precompile"]:
        build_precompiled_headers()
    elif sys.argv[1:] == ["packages"]:
        print(" ".join(image_packages()))
    else:
        raise SystemExit("usage: languages.py precompile | packages")
