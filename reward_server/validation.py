"""Validation of a ScoreRequest before any work is queued. Pure: no I/O.

Every error names the field (with its index) and the limit, e.g.
`completions[3].code: 70000 bytes exceeds the limit of 65536 bytes`.
"""

from __future__ import annotations

import functools
import keyword

from codereward.v1 import reward_pb2 as pb
from reward_api import codec
from sandboxes.config import SandboxConfig

from .config import ServerConfig
from .errors import InvalidRequest

LANGUAGES = ("", "python")


MAX_PROGRAM_NAMES = 64


def _size(field: str, text: str, limit: int) -> None:
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > limit:
        raise InvalidRequest(f"{field}: {size} bytes exceeds the limit of {limit} bytes")


def _no_nul(field: str, text: str) -> None:
    if "\x00" in text:
        raise InvalidRequest(f"{field}: contains a NUL character")


@functools.lru_cache(maxsize=4096)
def _compile_error(code: str) -> str:
    """Why test code does not compile ("" when it does). Cached: a problem's tests come back
    with every group and every epoch."""
    try:
        compile(code, "<test>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return str(exc)
    return ""


def _test(index: int, test: pb.TestCase, config: ServerConfig, entry_point: str) -> None:
    field = f"problem.tests[{index}]"
    kind = test.WhichOneof("kind")
    if kind is None:
        raise InvalidRequest(f"{field}: empty; set one of assert_code, io, call")
    if kind == "assert_code":
        if not test.assert_code.strip():
            raise InvalidRequest(f"{field}.assert_code: empty")
        _no_nul(f"{field}.assert_code", test.assert_code)
        _size(f"{field}.assert_code", test.assert_code, config.max_test_bytes)
        error = _compile_error(test.assert_code)
        if error:
            raise InvalidRequest(f"{field}.assert_code: does not compile: {error}")
    elif kind == "io":
        _size(f"{field}.io", test.io.stdin + test.io.expected_stdout, config.max_test_bytes)
    else:
        if not entry_point:
            raise InvalidRequest(f"{field}.call: needs problem.entry_point, the function to call")
        _size(f"{field}.call", test.call.args_json + test.call.expected_json, config.max_test_bytes)
        args = _json(f"{field}.call.args_json", test.call.args_json)
        if not isinstance(args, list):
            raise InvalidRequest(f"{field}.call.args_json: must be a JSON array of arguments, got {type(args).__name__}")
        _json(f"{field}.call.expected_json", test.call.expected_json)


def _json(field: str, text: str) -> object:
    try:
        return codec.loads(text)
    except codec.CodecError as exc:  # not JSON, nested too deeply, or a bad `$` tag
        raise InvalidRequest(f"{field}: {exc}") from None


def _limits(limits: pb.Limits, sandbox: SandboxConfig) -> None:
    caps = sandbox.max_limits
    for name in ("time_limit_s", "memory_limit_mb", "output_limit_bytes"):
        asked, cap = getattr(limits, name), getattr(caps, name)
        if asked != asked or asked < 0 or asked > cap:  # asked != asked: NaN
            raise InvalidRequest(f"problem.limits.{name}: {asked} is outside [0, {cap}] (0 = server default)")


def validate(request: pb.ScoreRequest, config: ServerConfig, sandbox: SandboxConfig) -> None:
    """Raise InvalidRequest naming the first thing wrong with the request."""
    if request.mode not in pb.ScoringMode.values():  # proto3 enums are open: any int arrives
        raise InvalidRequest(f"mode: {request.mode} is not a ScoringMode; use one of {', '.join(pb.ScoringMode.keys())}")
    if not request.completions:
        raise InvalidRequest("completions: empty; send at least one program")
    if len(request.completions) > config.max_completions:
        raise InvalidRequest(f"completions: {len(request.completions)} programs exceed the limit of {config.max_completions}")
    if not request.HasField("problem"):
        raise InvalidRequest("problem: missing")
    problem = request.problem
    if problem.language not in LANGUAGES:
        raise InvalidRequest(f"problem.language: {problem.language!r} is not supported; use 'python'")
    if not problem.tests:
        raise InvalidRequest("problem.tests: empty; a problem needs at least one test")
    if len(problem.tests) > config.max_tests:
        raise InvalidRequest(f"problem.tests: {len(problem.tests)} tests exceed the limit of {config.max_tests}")
    if problem.entry_point and (not problem.entry_point.isidentifier() or keyword.iskeyword(problem.entry_point)):
        raise InvalidRequest(f"problem.entry_point: {problem.entry_point!r} is not a Python identifier (a function name, not a keyword)")
    if len(problem.program_names) > MAX_PROGRAM_NAMES:
        raise InvalidRequest(f"problem.program_names: {len(problem.program_names)} names exceed the limit of {MAX_PROGRAM_NAMES}")
    for index, name in enumerate(problem.program_names):
        if not name.isidentifier() or keyword.iskeyword(name):
            raise InvalidRequest(f"problem.program_names[{index}]: {name!r} is not a Python identifier")
    _no_nul("problem.setup_code", problem.setup_code)
    _size("problem.setup_code", problem.setup_code, config.max_setup_bytes)
    if problem.setup_code:
        try:
            compile(problem.setup_code, "<problem.setup_code>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            raise InvalidRequest(f"problem.setup_code: does not compile: {exc}") from None
    _limits(problem.limits, sandbox)
    for index, test in enumerate(problem.tests):
        _test(index, test, config, problem.entry_point)
    for index, completion in enumerate(request.completions):
        _size(f"completions[{index}].code", completion.code, config.max_code_bytes)
