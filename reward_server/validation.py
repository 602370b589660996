"""Validation of a ScoreRequest before any work is queued. Pure: no I/O.

Every error names the field (with its index) and the limit, e.g.
`completions[3].code: 70000 bytes exceeds the limit of 65536 bytes`.
"""

from __future__ import annotations

import functools
import keyword
import math

from codereward.v1 import reward_pb2 as pb
from reward_api import codec
from sandboxes import languages
from sandboxes.config import SandboxConfig
from sandboxes.runner.protocol import COMPILE_ERRORS

from .config import ServerConfig
from .errors import InvalidRequest

TEST_KINDS = {"assert_code": "assert", "io": "io", "call": "call"}


MAX_PROGRAM_NAMES = 64
MAX_SUBTASK_NAME_BYTES = 256


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
    except COMPILE_ERRORS as exc:  # what the runner calls not compiling
        return str(exc)
    return ""


def _test(index: int, test: pb.TestCase, config: ServerConfig, entry_point: str, language: languages.Language) -> None:
    field = f"problem.tests[{index}]"
    kind = test.WhichOneof("kind")
    if kind is None:
        raise InvalidRequest(f"{field}: empty; set one of assert_code, io, call")
    if TEST_KINDS[kind] not in language.test_kinds:
        raise InvalidRequest(f"{field}.{kind}: a {language.name} problem takes io tests only (stdin → expected stdout)")
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


def _output_check(check: pb.OutputCheck) -> None:
    if check.mode not in pb.OutputCheck.Mode.values():
        raise InvalidRequest(f"problem.output_check.mode: {check.mode} is not a mode; use one of {', '.join(pb.OutputCheck.Mode.keys())}")
    for name in ("abs_tolerance", "rel_tolerance"):
        value = getattr(check, name)
        if not math.isfinite(value) or value < 0:
            raise InvalidRequest(f"problem.output_check.{name}: {value} must be a finite number >= 0")
    if check.mode == pb.OutputCheck.FLOATS and check.abs_tolerance == 0 and check.rel_tolerance == 0:
        raise InvalidRequest("problem.output_check: FLOATS needs abs_tolerance or rel_tolerance above 0")


def _checker(problem: pb.Problem, config: ServerConfig) -> None:
    checker = problem.checker
    named = [name for name in pb.Checker.Protocol.keys() if name != "PROTOCOL_UNSPECIFIED"]
    if checker.protocol == pb.Checker.PROTOCOL_UNSPECIFIED:
        raise InvalidRequest(f"problem.checker.protocol: unset; say how the checker answers: {' or '.join(named)}")
    if checker.protocol not in pb.Checker.Protocol.values():
        raise InvalidRequest(f"problem.checker.protocol: {checker.protocol} is not a protocol; use one of {', '.join(named)}")
    if (checker.language or languages.PYTHON) not in languages.LANGUAGES:
        raise InvalidRequest(f"problem.checker.language: {checker.language!r} is not supported; use one of {', '.join(map(repr, languages.LANGUAGES))}")
    if not checker.code.strip():
        raise InvalidRequest("problem.checker.code: empty")
    _no_nul("problem.checker.code", checker.code)
    _size("problem.checker.code", checker.code, config.max_checker_bytes)
    if (checker.language or languages.PYTHON) == languages.PYTHON and _compile_error(checker.code):
        raise InvalidRequest(f"problem.checker.code: does not compile: {_compile_error(checker.code)}")
    for index, test in enumerate(problem.tests):
        if test.WhichOneof("kind") != "io":
            raise InvalidRequest(f"problem.tests[{index}]: a problem with a checker takes io tests only (its output goes to the checker)")


def _subtasks(problem: pb.Problem) -> None:
    for index, subtask in enumerate(problem.subtasks):
        field = f"problem.subtasks[{index}]"
        if not math.isfinite(subtask.points) or subtask.points < 0:
            raise InvalidRequest(f"{field}.points: {subtask.points} must be a finite number >= 0")
        if not subtask.tests:
            raise InvalidRequest(f"{field}.tests: empty; a subtask needs at least one test")
        if len(subtask.tests) > len(problem.tests):
            raise InvalidRequest(f"{field}.tests: {len(subtask.tests)} indices for {len(problem.tests)} tests")
        seen: set[int] = set()
        for position, test in enumerate(subtask.tests):
            if test >= len(problem.tests):
                raise InvalidRequest(f"{field}.tests[{position}]: {test} is not a test index (the problem has {len(problem.tests)} tests)")
            if test in seen:
                raise InvalidRequest(f"{field}.tests[{position}]: test {test} is listed twice")
            seen.add(test)
        _size(f"{field}.name", subtask.name, MAX_SUBTASK_NAME_BYTES)
    if problem.subtasks and not sum(s.points for s in problem.subtasks) > 0:
        raise InvalidRequest("problem.subtasks: the points add up to 0; give at least one subtask points")


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
    if (problem.language or languages.PYTHON) not in languages.LANGUAGES:
        raise InvalidRequest(f"problem.language: {problem.language!r} is not supported; use one of {', '.join(map(repr, languages.LANGUAGES))}")
    language = languages.get(problem.language)
    if not language.in_process:
        for name in ("setup_code", "entry_point", "program_names"):
            if getattr(problem, name):
                raise InvalidRequest(f"problem.{name}: Python only; a {language.name} problem has none (its tests are io tests)")
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
        except COMPILE_ERRORS as exc:  # what the runner calls not compiling
            raise InvalidRequest(f"problem.setup_code: does not compile: {exc}") from None
    _limits(problem.limits, sandbox)
    _output_check(problem.output_check)
    if len(problem.subtasks) > config.max_tests:
        raise InvalidRequest(f"problem.subtasks: {len(problem.subtasks)} subtasks exceed the limit of {config.max_tests}")
    _subtasks(problem)
    if problem.HasField("checker"):
        _checker(problem, config)
    for index, test in enumerate(problem.tests):
        _test(index, test, config, problem.entry_point, language)
    for index, completion in enumerate(request.completions):
        _size(f"completions[{index}].code", completion.code, config.max_code_bytes)
