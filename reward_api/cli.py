"""`reward-client`: score request files, check health, turn benchmarks into request files.

    reward-client convert humaneval --samples samples.jsonl -o requests.jsonl
    reward-client score --target 127.0.0.1:50051 requests.jsonl -o responses.jsonl
    reward-client health --target 127.0.0.1:50051

Files hold one message per line in protobuf's JSON mapping: ScoreRequest in, ScoreResponse
out, in the same order. A line that cannot be read becomes a response whose `error` says why.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path

from google.protobuf import json_format
from tqdm import tqdm

from codereward.v1 import reward_pb2 as pb

from . import contests
from .client import AsyncRewardClient, ClientOptions, RewardServiceError, SpreadSession
from .types import GroupScore, ScoringMode, Verdict

SCORING_MODES = typing.get_args(ScoringMode)


def _error(request_id: str, code: str, message: str) -> pb.ScoreResponse:
    return pb.ScoreResponse(request_id=request_id, error=pb.ScoreError(code=code, message=message))


def read_requests(path: Path) -> Iterator[pb.ScoreRequest | pb.ScoreResponse]:
    """Each non-blank line as a ScoreRequest, or as an error response saying why it is not one."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield _error("", "INVALID_ARGUMENT", f"{path}:{number}: not UTF-8 ({exc})")
                continue
            try:
                yield json_format.Parse(line, pb.ScoreRequest())
            except json_format.ParseError as exc:
                yield _error("", "INVALID_ARGUMENT", f"{path}:{number}: not a ScoreRequest ({exc})")


def _to_json(message: pb.ScoreResponse) -> str:
    return json_format.MessageToJson(message, indent=None, ensure_ascii=False)


async def score_file(session: SpreadSession, path: Path, out: Path, concurrency: int, progress: bool = True) -> collections.Counter[str]:
    """Score every request of `path` into `out` (same order), over an open session (one stream
    per server); the verdict counts."""
    items = list(read_requests(path))
    responses: list[pb.ScoreResponse | None] = [None] * len(items)
    programs = sum(len(i.completions) for i in items if isinstance(i, pb.ScoreRequest))
    bar = tqdm(total=programs, unit="prog", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    slots = asyncio.Semaphore(concurrency)
    counts: collections.Counter[str] = collections.Counter()

    async def one(index: int, request: pb.ScoreRequest) -> None:
        original_id = request.request_id
        request.request_id = f"{index}"  # unique within the session, whatever the file says
        async with slots:
            try:
                group: GroupScore = await session.submit(request)
                assert group.raw is not None
                response = group.raw
            except RewardServiceError as exc:
                response = _error("", exc.code.name, exc.message)
        response.request_id = original_id
        responses[index] = response
        for result in response.results:
            counts[pb.Verdict.Name(result.verdict)] += 1
        bar.update(len(request.completions))

    tasks = []
    for index, item in enumerate(items):
        if isinstance(item, pb.ScoreResponse):
            responses[index] = item
            counts["refused"] += 1
        else:
            tasks.append(asyncio.create_task(one(index, item)))
    await asyncio.gather(*tasks)
    bar.close()
    with open(out, "w", encoding="utf-8") as f:
        for response in responses:
            assert response is not None
            f.write(_to_json(response) + "\n")
    return counts


def _summary(counts: collections.Counter[str], seconds: float) -> str:
    programs = sum(v for k, v in counts.items() if k != "refused")
    passed = counts.get(Verdict.PASSED.value, 0)
    rate = f"{passed / programs:.1%}" if programs else "n/a"
    verdicts = ", ".join(f"{k} {v}" for k, v in counts.most_common())
    return f"{programs} programs in {seconds:.1f}s ({programs / seconds if seconds else 0:.1f}/s); pass rate {rate}; {verdicts}"


def _client_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        action="append",
        required=True,
        help="HOST:PORT of a reward server; repeat for several (score: one stream per server, each group to the least loaded), or dns:///name:port",
    )
    parser.add_argument("--token", help="bearer token")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--tls-ca", type=Path, help="CA certificate that signed the server's (default: system roots)")
    parser.add_argument("--timeout", type=float, default=600.0, help="deadline of one call, seconds (default: %(default)s)")


def _options(args: argparse.Namespace) -> ClientOptions:
    return ClientOptions(token=args.token, tls=args.tls or args.tls_ca is not None, tls_ca=args.tls_ca, timeout_s=args.timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reward-client", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="score a JSONL file of ScoreRequests")
    _client_args(score)
    score.add_argument("input", type=Path)
    score.add_argument("-o", "--output", type=Path, required=True)
    score.add_argument("--concurrency", type=int, default=64, help="groups in flight (default: %(default)s)")
    score.add_argument("--quiet", action="store_true", help="no progress bar")

    health = commands.add_parser("health", help="print the server's health status")
    _client_args(health)

    convert = commands.add_parser(
        "convert",
        help="write a benchmark's or dataset's problems (with samples) as ScoreRequests",
        description="HumanEval and MBPP, and competitive-programming datasets (reward_api/contests.py): "
        "CodeContests, TACO, APPS, LiveCodeBench, open-r1 Codeforces. Rows that cannot be judged "
        "faithfully (interactive, needing a checker) are skipped and counted.",
    )
    convert.add_argument("benchmark", choices=["humaneval", "mbpp", *contests.FORMATS])
    convert.add_argument(
        "--data", help="MBPP: a JSONL file in Google's format; the others: a .jsonl/.json/.parquet file or a datasets name"
    )
    convert.add_argument("--split", default="train", help="split of a datasets name (default: %(default)s)")
    convert.add_argument("--language", choices=contests.LANGUAGES, default="python", help="the programs' language (contest datasets)")
    convert.add_argument("--samples", type=Path, help='JSONL of {"task_id", "completion"}; default: the reference solutions')
    convert.add_argument("--mode", choices=list(SCORING_MODES), default="ALL_OR_NOTHING")
    convert.add_argument("-o", "--output", type=Path, required=True)

    args = parser.parse_args(argv)
    if args.command == "convert":
        return _convert(args)
    if args.command == "health":
        try:
            print(asyncio.run(_health(args)))
        except Exception as exc:
            print(f"reward-client: {exc}", file=sys.stderr)
            return 1
        return 0
    began = time.monotonic()
    try:
        counts = asyncio.run(_score(args))
    except OSError as exc:
        print(f"reward-client: {exc}", file=sys.stderr)
        return 2
    print(_summary(counts, time.monotonic() - began), file=sys.stderr)
    return 0


async def _health(args: argparse.Namespace) -> str:
    async with AsyncRewardClient(args.target, _options(args)) as client:  # grpc.aio: made inside the loop
        return await client.health()


async def _score(args: argparse.Namespace) -> collections.Counter[str]:
    async with SpreadSession(args.target, _options(args)) as session:  # grpc.aio: made inside the loop
        return await score_file(session, args.input, args.output, args.concurrency, progress=not args.quiet)


def _convert(args: argparse.Namespace) -> int:
    from .datasets import humaneval_requests, mbpp_requests, samples_by_task

    if args.benchmark != "humaneval" and args.data is None:
        print(f"reward-client: convert {args.benchmark} needs --data", file=sys.stderr)
        return 2
    requests: Iterable[pb.ScoreRequest]
    if args.benchmark == "humaneval":
        requests = humaneval_requests(args.samples, args.mode)
    elif args.benchmark == "mbpp":
        requests = mbpp_requests(Path(args.data), args.samples, args.mode)
    else:
        try:
            rows = contests.load_rows(args.data, args.split)
        except ValueError as exc:
            print(f"reward-client: {exc}", file=sys.stderr)
            return 2
        problems, skipped = contests.contest_problems(args.benchmark, rows, args.language)
        for reason, count in skipped.most_common():
            print(f"skipped {count} rows: {reason}", file=sys.stderr)
        samples = samples_by_task(args.samples) if args.samples else None
        requests = contests.contest_requests(problems, samples, args.mode, args.language)
    count = 0
    with open(args.output, "w", encoding="utf-8") as f:
        for request in requests:
            f.write(json_format.MessageToJson(request, indent=None, ensure_ascii=False) + "\n")
            count += 1
    print(f"wrote {count} requests to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
