"""Generate the Python stubs of the wire contract (one command, pinned grpcio-tools):

    python -m reward_api.codegen          # writes codereward/v1/reward_pb2{.py,.pyi,_grpc.py}

The stubs are committed; `tests/test_contract.py` fails when they are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTOS = ["codereward/v1/reward.proto"]


def generate(out_dir: Path = ROOT) -> list[Path]:
    """Run protoc (from grpcio-tools) into out_dir; the files written."""
    from grpc_tools import protoc

    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *PROTOS,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    written = []
    for proto in PROTOS:
        stem = out_dir / proto.removesuffix(".proto")
        written += [stem.with_name(stem.name + suffix) for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")]
    return written


if __name__ == "__main__":
    for path in generate():
        print(path.relative_to(ROOT))
    sys.exit(0)
