"""The bad-input matrix against a real `reward-server` process: every malformed request gets a
clear error (INVALID_ARGUMENT naming the field and the limit) or, where the input is the
program's own business, a verdict; after each one the same server still scores a good group.

Cases already in test_server.py (no completions, too many, oversized code, no tests, too many
tests, unknown language, limits above the caps, call without entry point, malformed or non-list
args_json, empty test, test that does not compile, NUL in setup, bad entry point) and in
test_cli.py (non-UTF-8 and non-JSON lines of a request file) are not repeated here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from codereward.v1 import reward_pb2 as pb
from reward_api.client import RewardClient, RewardServiceError
from reward_api.types import Verdict, assert_test, call_test, io_test, make_problem, make_request

from .server_proc import ServerProcess
from .test_cli import run

pytestmark = pytest.mark.docker

ADD = make_problem("add", [assert_test("assert add(1, 2) == 3"), call_test([2, 3], 5)], entry_point="add")
GOOD = "def add(a, b):\n    return a + b\n"
DEEP = "[" * 30_000 + "]" * 30_000  # within the 64 KiB test limit, deeper than any JSON parser's stack


@pytest.fixture(scope="module")
def server(sandbox_image: str) -> Iterator[ServerProcess]:
    process = ServerProcess(sandbox_image)
    try:
        yield process
    finally:
        assert process.stop() == 0, process.output()[-3000:]


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[RewardClient]:
    with RewardClient(server.target, retry_timeout_s=2.0, timeout_s=120.0) as c:
        yield c


def still_serving(client: RewardClient) -> None:
    assert client.score_group(ADD, [GOOD, GOOD.replace("+", "-")]).rewards == [1.0, 0.0]


def call_problem(args_json: str, expected_json: str = "1") -> pb.Problem:
    return make_problem("p", [pb.TestCase(call=pb.CallTest(args_json=args_json, expected_json=expected_json))], entry_point="f")


def limits(**values: float) -> pb.Problem:
    problem = make_problem("p", [assert_test("pass")])
    for name, value in values.items():
        setattr(problem.limits, name, value)
    return problem


REFUSED = {
    "empty request": (pb.ScoreRequest(), "completions: empty"),
    "no problem": (pb.ScoreRequest(completions=[pb.Completion(id="0", code=GOOD)]), "problem: missing"),
    "unknown mode": (pb.ScoreRequest(mode=99, problem=ADD, completions=[pb.Completion(code=GOOD)]), "mode: 99 is not a ScoringMode"),
    "NaN time limit": (make_request(limits(time_limit_s=math.nan), [GOOD]), "problem.limits.time_limit_s: nan is outside [0, 30.0]"),
    "infinite time limit": (make_request(limits(time_limit_s=math.inf), [GOOD]), "problem.limits.time_limit_s: inf is outside"),
    "negative time limit": (make_request(limits(time_limit_s=-1), [GOOD]), "problem.limits.time_limit_s: -1.0 is outside"),
    "output limit above cap": (make_request(limits(output_limit_bytes=1 << 40), [GOOD]), "problem.limits.output_limit_bytes"),
    "args_json a string": (make_request(call_problem('"1, 2"'), [GOOD]), "must be a JSON array of arguments, got str"),
    "args_json null": (make_request(call_problem("null"), [GOOD]), "must be a JSON array of arguments, got NoneType"),
    "args_json a number": (make_request(call_problem("42"), [GOOD]), "must be a JSON array of arguments, got int"),
    "args_json with a raw NUL": (make_request(call_problem('["a\x00"]'), [GOOD]), "problem.tests[0].call.args_json: not JSON"),
    "args_json too deep": (make_request(call_problem(DEEP), [GOOD]), "problem.tests[0].call.args_json: nested too deeply"),
    "expected_json too deep": (make_request(call_problem("[1]", DEEP), [GOOD]), "problem.tests[0].call.expected_json: nested too deeply"),
    "expected_json not JSON": (make_request(call_problem("[1]", "{'a': 1}"), [GOOD]), "problem.tests[0].call.expected_json: not JSON"),
    "args_json huge integer": (make_request(call_problem("[" + "9" * 5000 + "]"), [GOOD]), "problem.tests[0].call.args_json: not JSON"),
    "keyword entry point": (
        make_request(make_problem("p", [assert_test("pass")], entry_point="class"), [GOOD]),
        "'class' is not a Python identifier",
    ),
    "NUL in assert code": (
        make_request(make_problem("p", [assert_test("assert 1\x00")]), [GOOD]),
        "problem.tests[0].assert_code: contains a NUL",
    ),
    "blank assert code": (make_request(make_problem("p", [assert_test("  \n ")]), [GOOD]), "problem.tests[0].assert_code: empty"),
    "setup code too large": (
        make_request(make_problem("p", [assert_test("pass")], setup_code="x = 1\n" * 20_000), [GOOD]),
        "problem.setup_code: 120000 bytes exceeds the limit of 65536",
    ),
    "setup code does not compile": (
        make_request(make_problem("p", [assert_test("pass")], setup_code="def ("), [GOOD]),
        "problem.setup_code: does not compile",
    ),
    "10 MB stdin": (
        make_request(make_problem("p", [io_test("1\n" * 5_000_000, "5000000\n")]), [GOOD]),
        "problem.tests[0].io: 10000008 bytes exceeds the limit of 65536",
    ),
    "oversized call test": (
        make_request(call_problem("[" + ",".join(["1"] * 40_000) + "]"), [GOOD]),
        "problem.tests[0].call: 80002 bytes exceeds the limit of 65536",
    ),
    "second completion oversized": (make_request(ADD, [GOOD, "#" * 70_000]), "completions[1].code: 70000 bytes exceeds"),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_malformed_requests_get_a_clear_error_and_the_server_keeps_serving(client: RewardClient, case: str) -> None:
    request, message = REFUSED[case]
    with pytest.raises(RewardServiceError) as caught:
        client.score(request)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    assert message in caught.value.message
    still_serving(client)


ANSWERED = {
    # The program's own input: whatever it is, it gets a verdict (never SANDBOX_ERROR).
    "NUL byte in the program": (ADD, "def add(a, b):\n    return a + b\x00\n", {Verdict.SYNTAX_ERROR}),
    "program nested too deeply to compile": (
        ADD,
        "x = " + "(" * 30_000 + ")" * 30_000 + "\n",
        {Verdict.SYNTAX_ERROR, Verdict.RUNTIME_ERROR},
    ),
    "non-UTF-8 bytes on stdout": (
        make_problem("p", [io_test("", "ok\n")]),
        "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe ok\\n')\n",
        {Verdict.FAILED},
    ),
    "NUL bytes in stdin and output": (make_problem("p", [io_test("a\x00b\n", "a\x00b\n")]), "print(input())\n", {Verdict.PASSED}),
    "return value nested past the harness's limit": (
        call_problem("[]", "[]"),
        "def f():\n    x = []\n    for _ in range(500):\n        x = [x]\n    return x\n",
        {Verdict.FAILED},
    ),
    "tiny time limit": (make_problem("p", [assert_test("while True:\n    pass")], time_limit_s=1e-6), "x = 1\n", {Verdict.TIMEOUT}),
    "one megabyte of memory": (
        make_problem("p", [assert_test("pass")], memory_limit_mb=1),
        "x = bytearray(10 << 20)\n",
        {Verdict.MEMORY_LIMIT, Verdict.RUNTIME_ERROR},
    ),
    "one byte of output": (make_problem("p", [io_test("", "hello\n")], output_limit_bytes=1), "print('hello')\n", {Verdict.OUTPUT_LIMIT}),
}


@pytest.mark.parametrize("case", list(ANSWERED), ids=list(ANSWERED))
def test_hostile_programs_and_extreme_limits_get_a_verdict(client: RewardClient, case: str) -> None:
    problem, code, verdicts = ANSWERED[case]
    result = client.score_group(problem, [code]).results[0]
    assert result.verdict in verdicts, result
    still_serving(client)


def raw_score(server: ServerProcess, payload: bytes) -> grpc.RpcError:
    with grpc.insecure_channel(server.target) as channel:
        score = channel.unary_unary("/codereward.v1.RewardService/Score")  # bytes in, bytes out
        with pytest.raises(grpc.RpcError) as caught:
            score(payload, timeout=30)
    return caught.value


CANNOT_READ = "the request could not be read as a message of /codereward.v1.RewardService/Score (DecodeError: Error parsing message with type 'codereward.v1.ScoreRequest'"


def test_bytes_that_are_not_a_request_are_refused(server: ServerProcess, client: RewardClient) -> None:
    error = raw_score(server, b"\xff\xff\xff\xff\x0f not protobuf")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and CANNOT_READ in (error.details() or ""), error
    still_serving(client)


def test_invalid_utf8_in_a_string_field_is_refused(server: ServerProcess, client: RewardClient) -> None:
    payload = make_request(ADD, [GOOD], request_id="AAAA").SerializeToString().replace(b"AAAA", b"\xff\xfeAA")
    error = raw_score(server, payload)
    assert (
        error.code() == grpc.StatusCode.INVALID_ARGUMENT and CANNOT_READ in (error.details() or "") and "UTF-8" in (error.details() or "")
    ), error
    still_serving(client)


def test_bytes_that_are_not_a_request_end_a_stream_with_an_error_not_a_hang(server: ServerProcess, client: RewardClient) -> None:
    good = make_request(ADD, [GOOD], request_id="good").SerializeToString()
    with grpc.insecure_channel(server.target) as channel:
        stream = channel.stream_stream("/codereward.v1.RewardService/ScoreStream")
        with pytest.raises(grpc.RpcError) as caught:
            list(stream(iter([good, b"\xff\xff\xff not protobuf"]), timeout=60))  # it used to hang until this deadline
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    assert "stream: a message could not be read as a ScoreRequest" in (caught.value.details() or "")
    still_serving(client)


def test_a_10_mb_stdin_is_scored_where_the_limit_allows_it(sandbox_image: str) -> None:
    server = ServerProcess(sandbox_image, "--max-test-bytes", str(16 << 20), workers=1)
    try:
        numbers = "\n".join(str(i % 1000) for i in range(2_600_000)) + "\n"  # ~10 MB
        assert len(numbers) > 10_000_000
        problem = make_problem("sum", [io_test(numbers, f"{sum(i % 1000 for i in range(2_600_000))}\n")], time_limit_s=20)
        program = "import sys\nprint(sum(int(line) for line in sys.stdin.buffer))\n"
        with RewardClient(server.target, timeout_s=120.0) as client:
            result = client.score_group(problem, [program, "print(0)\n"]).results
            assert [r.verdict for r in result] == [Verdict.PASSED, Verdict.FAILED], result
            still_serving(client)
    finally:
        assert server.stop() == 0


def test_odd_lines_of_a_request_file_each_get_an_error_response(server: ServerProcess, tmp_path: Path) -> None:
    good = make_request(ADD, [GOOD], request_id="good")
    lines = [
        r'{"requestId": "surrogate", "completions": [{"code": "x = \"\ud800\""}]}',  # an escape JSON allows, UTF-8 does not
        '{"requestId": "wrong type", "completions": "abc"}',
        '{"requestId": "unknown field", "surprise": 1}',
        '{"mode": "NOPE"}',
        "[]",  # parses as an empty ScoreRequest: refused by the server
        json_format.MessageToJson(good, indent=None),
        '{"requestId": "deep", "problem": ' + "{" * 200 + "}" * 200 + "}",
    ]
    requests, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    requests.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run("reward-client", "score", "--target", server.target, str(requests), "-o", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    responses = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(responses) == len(lines)
    errors = [r.get("error", {}) for r in responses]
    assert "Unpaired surrogate" in errors[0]["message"] and "in.jsonl:1" in errors[0]["message"]
    assert "in.jsonl:2: not a ScoreRequest" in errors[1]["message"]
    assert "surprise" in errors[2]["message"]
    assert "Invalid enum value NOPE" in errors[3]["message"]
    assert errors[4]["code"] == "INVALID_ARGUMENT" and "completions: empty" in errors[4]["message"]
    assert responses[5]["requestId"] == "good" and responses[5]["results"][0]["verdict"] == "PASSED"
    assert errors[6]["code"] == "INVALID_ARGUMENT" and "in.jsonl:7" in errors[6]["message"]
