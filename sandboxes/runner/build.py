"""Compiled languages inside the container: the files of a compile and of its runs. Stdlib
only; the runner (root) calls these, never a program's process.

- The compiler runs as the program's uid in COMPILE_DIR (its own, on the tmpfs), with the
  source written there and its output expected in `out/`. It is as untrusted as the
  program: what it leaves is read without following links, regular files only, bounded.
- The artefacts are then installed in BUILD_DIR, owned by root and read-only for everyone
  else, so no test's process can change what the next test runs; a native executable is run
  from a sealed, read-only memfd (the tmpfs stays `noexec`: nothing a program writes can be
  executed from it).
- The compile's directory is removed before the first test: a test sees its own source and
  artefacts only through BUILD_DIR.
- A test's own files (a checker's input, output and answer) are put in the job's directory,
  root's and read-only, before the test starts, and removed when the next one is put there.
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import shutil
import stat

from .languages import Language
from .protocol import PROGRAM_UID, Files, TestReport, Verdict

BUILD_DIR = "/tmp/build"
COMPILE_DIR = "/tmp/compile"
MAX_ARTEFACT_BYTES = 16 * 1024 * 1024  # a compile's artefacts together; also the compiler's file-size limit
MAX_DETAIL = 4096


class ArtefactError(Exception):
    """The compile succeeded but left nothing usable (the program's fault: COMPILE_ERROR)."""


def write_source(language: Language, program: str, headers: Files = ()) -> None:
    """The compiler's directory, its uid's alone, with the program written into it, and the
    headers it may include (root's, read-only) beside it."""
    out = os.path.join(COMPILE_DIR, "out")
    for path in (COMPILE_DIR, out):
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chown(path, PROGRAM_UID, PROGRAM_UID)
    for name, data in headers:
        _create(os.path.join(COMPILE_DIR, _plain(name)), data, 0o444)
    source = os.path.join(COMPILE_DIR, language.source)
    fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        _write_all(fd, program.encode("utf-8", errors="surrogateescape"))
        os.fchown(fd, PROGRAM_UID, PROGRAM_UID)
    finally:
        os.close(fd)


_placed: list[str] = []  # the names of the test files put in `_placed_in` last
_placed_in = [""]


def place_test_files(directory: str, files: Files) -> None:
    """A test's files in `directory` (root's, read-only to the test's process), in place of the
    last test's. Through a descriptor of the directory opened without following links: the
    directory is the test's uid's, and a process of that uid may have put a link in its place."""
    if _placed_in[0] != directory:  # another directory (a compile's), or gone with its job
        _placed.clear()
        _placed_in[0] = directory
    if not files and not _placed:
        return
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name in _placed + [_plain(name) for name, _ in files]:
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
        _placed.clear()
        for name, data in files:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444, dir_fd=dir_fd)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            _placed.append(name)
    finally:
        os.close(dir_fd)


def _plain(name: str) -> str:
    if not name or name != os.path.basename(name) or name in (".", ".."):
        raise ValueError(f"file name {name!r} is not a plain file name")
    return name


def _create(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def collect(language: Language) -> Files:
    """What the compile left that the runs need. Raises ArtefactError."""
    out = os.path.join(COMPILE_DIR, "out")
    try:
        names = sorted(os.listdir(out))
    except OSError as exc:
        raise ArtefactError(f"the compiler's output directory is gone ({exc.strerror})") from None
    files: list[tuple[str, bytes]] = []
    total = 0
    for pattern in language.artefacts:
        matched = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
        if not matched:
            raise ArtefactError(f"the compile made no {pattern}")
        for name in matched:
            data = _read_regular(os.path.join(out, name), MAX_ARTEFACT_BYTES - total)
            total += len(data)
            files.append((name, data))
    return tuple(files)


def _read_regular(path: str, limit: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ArtefactError(f"{os.path.basename(path)}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ArtefactError(f"{os.path.basename(path)} is not a regular file")
        if info.st_size > limit:
            raise ArtefactError(f"the compiled program is larger than {MAX_ARTEFACT_BYTES >> 20} MiB")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ArtefactError(f"the compiled program is larger than {MAX_ARTEFACT_BYTES >> 20} MiB")
        return b"".join(chunks)
    finally:
        os.close(fd)


def remove_compile_dir() -> None:
    shutil.rmtree(COMPILE_DIR, ignore_errors=True)


def install(files: Files, executable: str) -> int:
    """Put the artefacts in BUILD_DIR (root's, read-only to others); the executable's sealed
    memfd, or -1 for a language whose command is a program of the image."""
    os.makedirs(BUILD_DIR, mode=0o755, exist_ok=True)
    os.chown(BUILD_DIR, 0, 0)
    os.chmod(BUILD_DIR, 0o755)
    exec_fd = -1
    for name, data in files:
        _create(os.path.join(BUILD_DIR, _plain(name)), data, 0o444)
        if name == executable:
            exec_fd = sealed_memfd(data)
    if executable and exec_fd < 0:
        raise ValueError(f"the artefacts hold no {executable}")
    return exec_fd


def sealed_memfd(data: bytes) -> int:
    """A read-only descriptor of a memfd holding `data`, sealed against any change. Read-only
    because the kernel refuses to execute a file that is open for writing anywhere."""
    fd = os.memfd_create("program", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        _write_all(fd, data)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _head(data: bytes, limit: int) -> str:
    return data[:limit].decode("utf-8", errors="replace").rstrip()


def compile_detail(language: Language, report: TestReport, stdout: bytes, stderr: bytes) -> str:
    """Why a compile failed, for a COMPILE_ERROR: the compiler's first errors (the head of
    what it wrote, not the tail: the first error is the one that explains the rest)."""
    text = _head(stderr, MAX_DETAIL) or _head(stdout, MAX_DETAIL)
    if report.verdict is Verdict.TIMEOUT and "wall-clock" in (report.detail or ""):
        head = f"the compiler ran past its wall-clock limit ({report.detail})"
    elif report.verdict is Verdict.TIMEOUT:
        head = f"the compiler ran past its limit ({language.compile_cpu_s:g} s of CPU time)"
    elif report.verdict is Verdict.MEMORY_LIMIT:
        head = f"the compiler ran out of memory ({language.compile_memory_mb} MB)"
    elif report.verdict is Verdict.OUTPUT_LIMIT:
        head = f"the compiler wrote more than {language.compile_output_bytes} bytes of errors; the first ones:"
    elif text:
        head = ""
    else:
        head = f"the compiler failed ({report.detail[:200]})"
    detail = f"{head}\n{text}" if head and text else head or text
    return detail.encode("utf-8", errors="replace")[:MAX_DETAIL].decode("utf-8", errors="ignore")
