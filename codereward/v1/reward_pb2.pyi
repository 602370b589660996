from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoringMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALL_OR_NOTHING: _ClassVar[ScoringMode]
    FRACTION: _ClassVar[ScoringMode]
    SUBTASKS: _ClassVar[ScoringMode]
    SUBTASK_TESTS: _ClassVar[ScoringMode]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    PASSED: _ClassVar[Verdict]
    FAILED: _ClassVar[Verdict]
    RUNTIME_ERROR: _ClassVar[Verdict]
    SYNTAX_ERROR: _ClassVar[Verdict]
    TIMEOUT: _ClassVar[Verdict]
    MEMORY_LIMIT: _ClassVar[Verdict]
    OUTPUT_LIMIT: _ClassVar[Verdict]
    SKIPPED: _ClassVar[Verdict]
    SANDBOX_ERROR: _ClassVar[Verdict]
    COMPILE_ERROR: _ClassVar[Verdict]
ALL_OR_NOTHING: ScoringMode
FRACTION: ScoringMode
SUBTASKS: ScoringMode
SUBTASK_TESTS: ScoringMode
VERDICT_UNSPECIFIED: Verdict
PASSED: Verdict
FAILED: Verdict
RUNTIME_ERROR: Verdict
SYNTAX_ERROR: Verdict
TIMEOUT: Verdict
MEMORY_LIMIT: Verdict
OUTPUT_LIMIT: Verdict
SKIPPED: Verdict
SANDBOX_ERROR: Verdict
COMPILE_ERROR: Verdict

class Limits(_message.Message):
    __slots__ = ("time_limit_s", "memory_limit_mb", "output_limit_bytes")
    TIME_LIMIT_S_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_MB_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_LIMIT_BYTES_FIELD_NUMBER: _ClassVar[int]
    time_limit_s: float
    memory_limit_mb: int
    output_limit_bytes: int
    def __init__(self, time_limit_s: _Optional[float] = ..., memory_limit_mb: _Optional[int] = ..., output_limit_bytes: _Optional[int] = ...) -> None: ...

class OutputCheck(_message.Message):
    __slots__ = ("mode", "abs_tolerance", "rel_tolerance")
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        LINES: _ClassVar[OutputCheck.Mode]
        EXACT: _ClassVar[OutputCheck.Mode]
        TOKENS: _ClassVar[OutputCheck.Mode]
        FLOATS: _ClassVar[OutputCheck.Mode]
    LINES: OutputCheck.Mode
    EXACT: OutputCheck.Mode
    TOKENS: OutputCheck.Mode
    FLOATS: OutputCheck.Mode
    MODE_FIELD_NUMBER: _ClassVar[int]
    ABS_TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    REL_TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    mode: OutputCheck.Mode
    abs_tolerance: float
    rel_tolerance: float
    def __init__(self, mode: _Optional[_Union[OutputCheck.Mode, str]] = ..., abs_tolerance: _Optional[float] = ..., rel_tolerance: _Optional[float] = ...) -> None: ...

class Checker(_message.Message):
    __slots__ = ("language", "code", "protocol")
    class Protocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PROTOCOL_UNSPECIFIED: _ClassVar[Checker.Protocol]
        TESTLIB: _ClassVar[Checker.Protocol]
        OPEN_R1: _ClassVar[Checker.Protocol]
    PROTOCOL_UNSPECIFIED: Checker.Protocol
    TESTLIB: Checker.Protocol
    OPEN_R1: Checker.Protocol
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    language: str
    code: str
    protocol: Checker.Protocol
    def __init__(self, language: _Optional[str] = ..., code: _Optional[str] = ..., protocol: _Optional[_Union[Checker.Protocol, str]] = ...) -> None: ...

class Subtask(_message.Message):
    __slots__ = ("points", "tests", "name")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    points: float
    tests: _containers.RepeatedScalarFieldContainer[int]
    name: str
    def __init__(self, points: _Optional[float] = ..., tests: _Optional[_Iterable[int]] = ..., name: _Optional[str] = ...) -> None: ...

class IoTest(_message.Message):
    __slots__ = ("stdin", "expected_stdout")
    STDIN_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STDOUT_FIELD_NUMBER: _ClassVar[int]
    stdin: str
    expected_stdout: str
    def __init__(self, stdin: _Optional[str] = ..., expected_stdout: _Optional[str] = ...) -> None: ...

class CallTest(_message.Message):
    __slots__ = ("args_json", "expected_json")
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_JSON_FIELD_NUMBER: _ClassVar[int]
    args_json: str
    expected_json: str
    def __init__(self, args_json: _Optional[str] = ..., expected_json: _Optional[str] = ...) -> None: ...

class TestCase(_message.Message):
    __slots__ = ("assert_code", "io", "call")
    ASSERT_CODE_FIELD_NUMBER: _ClassVar[int]
    IO_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    assert_code: str
    io: IoTest
    call: CallTest
    def __init__(self, assert_code: _Optional[str] = ..., io: _Optional[_Union[IoTest, _Mapping]] = ..., call: _Optional[_Union[CallTest, _Mapping]] = ...) -> None: ...

class Problem(_message.Message):
    __slots__ = ("id", "language", "setup_code", "tests", "entry_point", "limits", "program_names", "output_check", "subtasks", "checker")
    ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SETUP_CODE_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    ENTRY_POINT_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_NAMES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_CHECK_FIELD_NUMBER: _ClassVar[int]
    SUBTASKS_FIELD_NUMBER: _ClassVar[int]
    CHECKER_FIELD_NUMBER: _ClassVar[int]
    id: str
    language: str
    setup_code: str
    tests: _containers.RepeatedCompositeFieldContainer[TestCase]
    entry_point: str
    limits: Limits
    program_names: _containers.RepeatedScalarFieldContainer[str]
    output_check: OutputCheck
    subtasks: _containers.RepeatedCompositeFieldContainer[Subtask]
    checker: Checker
    def __init__(self, id: _Optional[str] = ..., language: _Optional[str] = ..., setup_code: _Optional[str] = ..., tests: _Optional[_Iterable[_Union[TestCase, _Mapping]]] = ..., entry_point: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., program_names: _Optional[_Iterable[str]] = ..., output_check: _Optional[_Union[OutputCheck, _Mapping]] = ..., subtasks: _Optional[_Iterable[_Union[Subtask, _Mapping]]] = ..., checker: _Optional[_Union[Checker, _Mapping]] = ...) -> None: ...

class Completion(_message.Message):
    __slots__ = ("id", "code")
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    id: str
    code: str
    def __init__(self, id: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("request_id", "problem", "completions", "mode", "fail_fast")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FAIL_FAST_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    problem: Problem
    completions: _containers.RepeatedCompositeFieldContainer[Completion]
    mode: ScoringMode
    fail_fast: bool
    def __init__(self, request_id: _Optional[str] = ..., problem: _Optional[_Union[Problem, _Mapping]] = ..., completions: _Optional[_Iterable[_Union[Completion, _Mapping]]] = ..., mode: _Optional[_Union[ScoringMode, str]] = ..., fail_fast: _Optional[bool] = ...) -> None: ...

class TestResult(_message.Message):
    __slots__ = ("verdict", "wall_time_s", "detail")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_S_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    verdict: Verdict
    wall_time_s: float
    detail: str
    def __init__(self, verdict: _Optional[_Union[Verdict, str]] = ..., wall_time_s: _Optional[float] = ..., detail: _Optional[str] = ...) -> None: ...

class CompletionResult(_message.Message):
    __slots__ = ("id", "reward", "verdict", "tests", "passed", "total", "wall_time_s", "deduplicated")
    ID_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_S_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    id: str
    reward: float
    verdict: Verdict
    tests: _containers.RepeatedCompositeFieldContainer[TestResult]
    passed: int
    total: int
    wall_time_s: float
    deduplicated: bool
    def __init__(self, id: _Optional[str] = ..., reward: _Optional[float] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., tests: _Optional[_Iterable[_Union[TestResult, _Mapping]]] = ..., passed: _Optional[int] = ..., total: _Optional[int] = ..., wall_time_s: _Optional[float] = ..., deduplicated: _Optional[bool] = ...) -> None: ...

class ScoreError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("request_id", "results", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    results: _containers.RepeatedCompositeFieldContainer[CompletionResult]
    error: ScoreError
    def __init__(self, request_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[CompletionResult, _Mapping]]] = ..., error: _Optional[_Union[ScoreError, _Mapping]] = ...) -> None: ...
