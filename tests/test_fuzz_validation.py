"""Property-based tests of request validation (pure, no Docker): whatever a client sends,
`validate` either accepts it or raises InvalidRequest naming a field, never anything else; and
what it accepts, the rest of the server can turn into a sandbox job without failing.
(Properties of the output comparators are in test_compare.py.)
"""

from __future__ import annotations

import json
import keyword
import math

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codereward.v1 import reward_pb2 as pb
from reward_server.config import ServerConfig
from reward_server.convert import to_mode, to_problem
from reward_server.errors import InvalidRequest
from reward_server.validation import validate
from sandboxes.config import SandboxConfig
from sandboxes.pool import build_job

CONFIG = ServerConfig(
    max_completions=8,
    max_code_bytes=512,
    max_test_bytes=8192,  # room for JSON nested past the parser's stack
    max_setup_bytes=512,
    max_tests=6,
)
SANDBOX = SandboxConfig(image="unused")
FIELDS = ("completions", "problem", "mode")

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)  # protobuf strings are UTF-8: no lone surrogates
json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3),
    max_leaves=8,
).map(json.dumps)
nested = st.one_of(st.sampled_from([1, 100, 990, 1000, 1500, 3000]), st.integers(min_value=1, max_value=3000)).map(
    lambda n: "[" * n + "]" * n
)  # past the parser's stack too
code_text = st.one_of(text, st.sampled_from(["assert True", "assert (", "x = 1\x00", "pass", "\n", "def f(:", "(" * 300 + ")" * 300]))
name = st.one_of(st.sampled_from(["", "f", "add", "class", "None", "1f", "f-g", "ünïcode", "_"]), text)


def cases() -> st.SearchStrategy[pb.TestCase]:
    return st.one_of(
        st.just(pb.TestCase()),
        st.just(pb.TestCase(assert_code="assert True")),
        code_text.map(lambda c: pb.TestCase(assert_code=c)),
        st.builds(lambda i, o: pb.TestCase(io=pb.IoTest(stdin=i, expected_stdout=o)), text, text),
        st.builds(
            lambda a, e: pb.TestCase(call=pb.CallTest(args_json=a, expected_json=e)),
            st.one_of(json_text, text, nested),
            st.one_of(json_text, text, nested),
        ),
    )


# Each field is mostly valid, sometimes not: a request with every field random would always be
# refused at its first field and never reach the checks behind it.
limits = st.builds(
    pb.Limits,
    time_limit_s=st.one_of(st.just(0.0), st.floats(min_value=0, max_value=30), st.floats(allow_nan=True, allow_infinity=True, width=64)),
    memory_limit_mb=st.one_of(st.just(0), st.integers(min_value=0, max_value=512), st.integers(min_value=0, max_value=2**32 - 1)),
    output_limit_bytes=st.one_of(st.just(0), st.integers(min_value=0, max_value=2**64 - 1)),
)
problems = st.builds(
    pb.Problem,
    id=text,
    language=st.one_of(st.sampled_from(["", "python"]), st.sampled_from(["", "python", "Python", "cobol", "cpp", "javascript"])),
    setup_code=st.one_of(st.just(""), st.just(""), code_text, st.just("x" * 600)),
    tests=st.one_of(st.lists(cases(), min_size=1, max_size=4), st.lists(cases(), max_size=8)),
    entry_point=st.one_of(st.just("f"), name),
    limits=st.one_of(st.just(pb.Limits()), limits),
)
requests = st.builds(
    lambda rid, problem, codes, mode, fail_fast: pb.ScoreRequest(
        request_id=rid,
        completions=[pb.Completion(id=str(i), code=c) for i, c in enumerate(codes)],
        mode=mode,
        fail_fast=fail_fast,
        **({"problem": problem} if problem is not None else {}),
    ),
    text,
    st.one_of(problems, problems, problems, st.none()),
    st.one_of(
        st.lists(text, min_size=1, max_size=4),
        st.lists(text, min_size=1, max_size=4),
        st.lists(st.one_of(text, st.just("y" * 600)), max_size=10),
    ),
    st.one_of(st.just(0), st.just(1), st.just(0), st.integers(min_value=-3, max_value=5)),
    st.booleans(),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_validation_accepts_or_names_a_field_and_what_it_accepts_becomes_a_job(request: pb.ScoreRequest) -> None:
    try:
        validate(request, CONFIG, SANDBOX)
    except InvalidRequest as exc:
        assert str(exc).startswith(FIELDS), exc
        return
    # Accepted: the limits it promised hold, and the server's next steps cannot fail on it.
    problem = to_problem(request.problem)
    assert 1 <= len(problem.tests) <= CONFIG.max_tests and 1 <= len(request.completions) <= CONFIG.max_completions
    assert not problem.entry_point or (problem.entry_point.isidentifier() and not keyword.iskeyword(problem.entry_point))
    limits = SANDBOX.resolve(problem.limits)
    assert math.isfinite(limits.time_limit_s) and limits.time_limit_s > 0
    to_mode(request.mode)
    for completion in request.completions:
        json.dumps(build_job(problem, completion.code, limits, request.fail_fast).to_message(1))


def skeleton(**problem: object) -> pb.ScoreRequest:
    """A valid request with one part of its problem replaced."""
    fields: dict[str, object] = {
        "id": "p",
        "language": "python",
        "entry_point": "f",
        "tests": [pb.TestCase(assert_code="assert True")],
        **problem,
    }
    return pb.ScoreRequest(problem=pb.Problem(**fields), completions=[pb.Completion(id="0", code="def f(): pass")])  # type: ignore[arg-type]


def accepted_or_refused_at(request: pb.ScoreRequest, field: str) -> bool:
    try:
        validate(request, CONFIG, SANDBOX)
    except InvalidRequest as exc:
        assert str(exc).startswith(field), exc
        return False
    return True


@settings(max_examples=300)
@given(st.lists(cases(), min_size=1, max_size=3))
def test_any_test_case_is_accepted_or_refused_by_its_own_field(tests: list[pb.TestCase]) -> None:
    if accepted_or_refused_at(skeleton(tests=tests), "problem.tests["):
        for test in tests:
            if test.WhichOneof("kind") == "call":
                assert isinstance(json.loads(test.call.args_json), list)
                json.loads(test.call.expected_json)


@settings(max_examples=200)
@given(limits)
def test_any_limits_are_accepted_or_refused_by_their_own_field(value: pb.Limits) -> None:
    if accepted_or_refused_at(skeleton(limits=value), "problem.limits."):
        resolved = SANDBOX.resolve(to_problem(skeleton(limits=value).problem).limits)
        assert 0 < resolved.time_limit_s <= SANDBOX.max_limits.time_limit_s


@settings(max_examples=200)
@given(name)
def test_any_entry_point_is_accepted_or_refused_by_its_own_field(entry: str) -> None:
    if accepted_or_refused_at(skeleton(entry_point=entry), "problem.entry_point"):
        assert entry == "" or (entry.isidentifier() and not keyword.iskeyword(entry))


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_decode_to_a_request_that_validates_cleanly_or_not_at_all(data: bytes) -> None:
    try:
        request = pb.ScoreRequest.FromString(data)
    except DecodeError:
        return
    try:
        validate(request, CONFIG, SANDBOX)
    except InvalidRequest as exc:
        assert str(exc).startswith(FIELDS), exc


identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True).filter(lambda s: not keyword.iskeyword(s))


@settings(max_examples=200)
@given(
    identifiers,
    st.lists(st.lists(st.integers(), max_size=3), min_size=1, max_size=4),
    st.lists(text.filter(lambda s: "\x00" not in s), min_size=1, max_size=8),
)
def test_well_formed_requests_are_always_accepted(entry: str, calls: list[list[int]], codes: list[str]) -> None:
    tests = [pb.TestCase(call=pb.CallTest(args_json=json.dumps(args), expected_json=json.dumps(sum(args)))) for args in calls]
    tests.append(pb.TestCase(assert_code=f"assert {entry} is not None"))
    tests.append(pb.TestCase(io=pb.IoTest(stdin="1 2\n", expected_stdout="3\n")))
    problem = pb.Problem(id="p", language="python", entry_point=entry, tests=tests[: CONFIG.max_tests])
    validate(pb.ScoreRequest(problem=problem, completions=[pb.Completion(code=c) for c in codes]), CONFIG, SANDBOX)


def test_deep_json_is_refused_not_crashed() -> None:
    deep = "[" * 30_000 + "]" * 30_000
    problem = pb.Problem(entry_point="f", tests=[pb.TestCase(call=pb.CallTest(args_json="[1]", expected_json=deep))])
    with pytest.raises(InvalidRequest, match=r"problem.tests\[0\].call.expected_json: nested too deeply"):
        validate(pb.ScoreRequest(problem=problem, completions=[pb.Completion(code="x")]), ServerConfig(), SANDBOX)
