"""The line `reward-server` writes to stderr once it serves, and how a process that started it
on port 0 reads its ports back. Written and read here only, so that the two cannot drift."""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(r"listening on (\S+):(\d+), metrics on :(\d+|-)")


@dataclass(frozen=True)
class Listening:
    host: str
    port: int
    metrics_port: int | None
    """None: the server has no metrics endpoint."""

    def line(self) -> str:
        return f"reward-server: listening on {self.host}:{self.port}, metrics on :{self.metrics_port or '-'}"


def find_listening(text: str) -> Listening | None:
    """The first listening line in `text` (a server's log so far), or None before there is one."""
    match = _LINE.search(text)
    if match is None:
        return None
    host, port, metrics = match.groups()
    return Listening(host, int(port), None if metrics == "-" else int(metrics))
