"""C++ compile cost: with the image's precompiled bits/stdc++.h against without it (the
baseline, in the same run), and what the binary cache saves end to end.

1. In the sandbox image, as the program's uid, the registry's exact g++ command compiles a
   typical competitive program (bits/stdc++.h, a few containers and algorithms) `--rounds`
   times with the precompiled header, and as many times with an include directory that holds
   only a copy of bits/stdc++.h (so g++ finds no .gch and parses the text, same flags).
2. Through a sandbox pool: distinct sources (each compiled: a miss) against one source run
   again (a hit: its binary comes from the cache, no compile), a 3-test job each.

    python bench/bench_compile.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandboxes import IoTest, Problem, SandboxConfig, SandboxPool  # noqa: E402
from sandboxes.image import image_tag  # noqa: E402
from sandboxes.languages import get  # noqa: E402
from sandboxes.pool import PoolListener  # noqa: E402
from sandboxes.runner.protocol import PROGRAM_UID, Compiled  # noqa: E402

PROGRAM = r"""#include <bits/stdc++.h>
using namespace std;
int main() {
    int n; cin >> n;
    vector<long long> a(n); for (auto& x : a) cin >> x;
    sort(a.begin(), a.end());
    map<long long, int> count; for (auto x : a) count[x]++;
    priority_queue<long long> heap(a.begin(), a.end());
    set<long long> seen(a.begin(), a.end());
    long long total = accumulate(a.begin(), a.end(), 0LL);
    cout << total << ' ' << count.size() << ' ' << heap.top() << ' ' << seen.size() << '\n';
}
"""

# Runs inside the image: times the registry's compile command with and without the .gch.
INSIDE = r"""
import glob, json, os, resource, shutil, subprocess, sys, time
argv, program, rounds = json.loads(sys.argv[1])
os.makedirs("/tmp/bench/out"); os.chdir("/tmp/bench")
open("main.cpp", "w").write(program)
header = sorted(glob.glob("/usr/include/*/c++/*/bits/stdc++.h"))[-1]
os.makedirs("/tmp/nopch/bits"); shutil.copy(header, "/tmp/nopch/bits/stdc++.h")
def one(extra):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run([argv[0], *extra, *argv[1:]], check=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
runs = {"pch": [], "no_pch": []}
one([])  # warm the page cache
for _ in range(rounds):  # interleaved, so that load on the machine hits both alike
    runs["pch"].append(one([]))
    runs["no_pch"].append(one(["-I/tmp/nopch"]))
print(json.dumps(runs))
"""


def toolchain(rounds: int) -> dict[str, list[list[float]]]:
    cpp = get("cpp")
    payload = json.dumps([list(cpp.compile), PROGRAM, rounds])
    command = ["docker", "run", "--rm", "--network", "none", "--user", f"{PROGRAM_UID}:{PROGRAM_UID}", "--tmpfs", "/tmp:exec,size=256m",
               "--entrypoint", "python3", image_tag(), "-c", INSIDE, payload]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


class Compiles(PoolListener):
    def __init__(self) -> None:
        self.seen: list[Compiled] = []

    def compiled(self, language: str, compiled: Compiled) -> None:
        self.seen.append(compiled)


async def through_the_pool(rounds: int) -> tuple[list[float], list[float], list[Compiled]]:
    listener = Compiles()
    problem = Problem(id="bench", language="cpp", tests=tuple(IoTest("3\n5 1 5\n", "11 2 5 2\n") for _ in range(3)))
    missed, hit = [], []
    async with SandboxPool(SandboxConfig(workers=1), listener=listener) as pool:
        for i in range(rounds):
            began = time.perf_counter()
            result = await pool.run(problem, PROGRAM + f"// source {i}\n")
            missed.append(time.perf_counter() - began)
            assert result.verdict.value == "PASSED", result
        for _ in range(rounds):
            began = time.perf_counter()
            result = await pool.run(problem, PROGRAM + "// source 0\n")
            hit.append(time.perf_counter() - began)
            assert result.verdict.value == "PASSED", result
    return missed, hit, listener.seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    runs = toolchain(args.rounds)
    med = {name: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for name, r in runs.items()}
    print(f"g++ {' '.join(get('cpp').compile[1:])}  ({args.rounds} rounds, medians)")
    print(f"  without precompiled header (baseline): wall {med['no_pch'][0]:.2f} s, CPU {med['no_pch'][1]:.2f} s")
    print(f"  with bits/stdc++.h.gch:                wall {med['pch'][0]:.2f} s, CPU {med['pch'][1]:.2f} s")
    print(f"  ratio (without / with): wall {med['no_pch'][0] / med['pch'][0]:.1f}x, CPU {med['no_pch'][1] / med['pch'][1]:.1f}x")
    missed, hit, compiles = asyncio.run(through_the_pool(args.rounds))
    print("through the pool, a 3-test job (medians):")
    print(f"  compiled (cache miss; baseline): {statistics.median(missed):.3f} s, of which the compile {statistics.median(c.wall_time_s for c in compiles):.3f} s")
    print(f"  cached binary (cache hit):       {statistics.median(hit):.3f} s")
    print(f"  ratio (miss / hit): {statistics.median(missed) / statistics.median(hit):.1f}x; compiles run: {len(compiles)} for {2 * args.rounds} jobs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
