"""The binary cache: what compiling a source gave, so that an identical source in a later job
(of this request or another, on any container) is not compiled again. Pure: no I/O.

Keyed by (language, sha256 of the source, the language's `build_id`: its compile command and
what it keeps); bounded, least recently used first out, by entries and by bytes. A failed
compile is cached too (its COMPILE_ERROR detail): the same source fails the same way.

Why it lives here, on the host, in the pool's process: programs run in containers and never
reach this process, so no program can change another program's binary. An entry is made
only from the reply of the job that compiled exactly that source, and the runner reads the
artefacts right after the compile, before any test of the job has run and after killing
whatever the compiler left running; in the container the artefacts a job runs are root's
and read-only (`runner/build.py`). A cache inside a container would instead share a machine
with every later program and be lost with each container.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from .languages import Language
from .runner.protocol import Compiled, Files

Key = tuple[str, str, str]


def cache_key(language: Language, source: str, headers: Files = ()) -> Key:
    """`headers`: files the compile had next to the source (a checker's testlib.h)."""
    digest = hashlib.sha256(source.encode("utf-8", errors="surrogatepass"))
    for name, data in headers:
        digest.update(b"\0" + name.encode() + b"\0" + hashlib.sha256(data).digest())
    return (language.name, digest.hexdigest(), language.build_id)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class BinaryCache:
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("binary cache bounds must be >= 0 (0 = no cache)")
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[Key, Compiled] = OrderedDict()
        self.bytes = 0
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Compiled | None:
        compiled = self._entries.get(key)
        if compiled is None:
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return compiled

    def put(self, key: Key, compiled: Compiled) -> None:
        if compiled.size > self.max_bytes or self.max_entries == 0 or not compiled.cacheable:
            return  # larger than the whole cache, or a failure the machine had a say in: not kept
        if not compiled.ok and key in self._entries and self._entries[key].ok:
            return  # a compile of this source worked: a failure now was the container's state, not the source's
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        self._entries[key] = compiled
        self.bytes += compiled.size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.size
            self.stats.evictions += 1
