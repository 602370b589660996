"""Competitive programming through the pool: stdin/stdout programs with several tests each, in
C++ (compile included) and in Python, against baselines run in the same process.

Eight accepted solutions (written for this bench: sums, sorting, prefix-sum queries, BFS on a
grid, knapsack, gcd/lcm, words, binary search), each in C++ and Python, each with 5 seeded
random tests whose answers a Python reference computes here.

1. C++, cold: the 8 sources (made distinct per round) through a pool of `--workers`, every
   one compiled in its container, then run on its 5 tests; against bare `g++` on the host
   with the same flags (no precompiled header, as a user would run it), compile then 5 runs,
   one program at a time. Warm: the same sources again, their binaries from the cache.
2. Python: the 8 stdin programs through the pool, against HumanEval's function-style
   canonical solutions through the same pool (the numbers README's table reports).
3. Checkers: the same Python programs on a problem whose tests a Python checker judges
   (TESTLIB), against the plain comparison.

    python bench/bench_contest.py [--rounds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandboxes import IoTest, Problem, SandboxConfig, SandboxPool  # noqa: E402
from sandboxes.datasets import humaneval_tasks  # noqa: E402
from sandboxes.languages import CPP_FLAGS  # noqa: E402
from sandboxes.types import Checker, Verdict  # noqa: E402

Case = tuple[str, Callable[[random.Random], str], Callable[[str], str], str, str]  # name, input, answer, C++, Python


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split()]


def _sum_in(r: random.Random) -> str:
    n = r.randint(1, 2000)
    return f"{n}\n{' '.join(str(r.randint(-10**9, 10**9)) for _ in range(n))}\n"


def _sum_out(text: str) -> str:
    return f"{sum(_ints(text)[1:])}\n"


def _sort_in(r: random.Random) -> str:
    n = r.randint(1, 2000)
    return f"{n}\n{' '.join(str(r.randint(1, 500)) for _ in range(n))}\n"


def _sort_out(text: str) -> str:
    values = sorted(set(_ints(text)[1:]))
    return f"{len(values)}\n{' '.join(map(str, values))}\n"


def _prefix_in(r: random.Random) -> str:
    n, q = r.randint(1, 1000), r.randint(1, 1000)
    queries = []
    for _ in range(q):
        a = r.randint(1, n)
        queries.append(f"{a} {r.randint(a, n)}")
    return f"{n} {q}\n{' '.join(str(r.randint(0, 10**6)) for _ in range(n))}\n" + "\n".join(queries) + "\n"


def _prefix_out(text: str) -> str:
    values = _ints(text)
    n, q = values[0], values[1]
    a = values[2 : 2 + n]
    prefix = [0]
    for x in a:
        prefix.append(prefix[-1] + x)
    rest = values[2 + n :]
    return "".join(f"{prefix[rest[2 * i + 1]] - prefix[rest[2 * i] - 1]}\n" for i in range(q))


def _grid_in(r: random.Random) -> str:
    h, w = r.randint(2, 40), r.randint(2, 40)
    rows = ["".join("#" if r.random() < 0.25 else "." for _ in range(w)) for _ in range(h)]
    rows[0] = "." + rows[0][1:]
    rows[-1] = rows[-1][:-1] + "."
    return f"{h} {w}\n" + "\n".join(rows) + "\n"


def _grid_out(text: str) -> str:
    lines = text.split()
    h, w, grid = int(lines[0]), int(lines[1]), lines[2:]
    dist = {(0, 0): 0}
    queue = [(0, 0)]
    for y, x in queue:
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            ny, nx = y + dy, x + dx
            if 0 <= ny < h and 0 <= nx < w and grid[ny][nx] == "." and (ny, nx) not in dist:
                dist[(ny, nx)] = dist[(y, x)] + 1
                queue.append((ny, nx))
    return f"{dist.get((h - 1, w - 1), -1)}\n"


def _knap_in(r: random.Random) -> str:
    n, cap = r.randint(1, 60), r.randint(1, 1000)
    return f"{n} {cap}\n" + "".join(f"{r.randint(1, 100)} {r.randint(1, 1000)}\n" for _ in range(n))


def _knap_out(text: str) -> str:
    values = _ints(text)
    n, cap = values[0], values[1]
    best = [0] * (cap + 1)
    for i in range(n):
        weight, value = values[2 + 2 * i], values[3 + 2 * i]
        for c in range(cap, weight - 1, -1):
            best[c] = max(best[c], best[c - weight] + value)
    return f"{best[cap]}\n"


def _gcd_in(r: random.Random) -> str:
    t = r.randint(1, 500)
    return f"{t}\n" + "".join(f"{r.randint(1, 10**6)} {r.randint(1, 10**6)}\n" for _ in range(t))


def _gcd_out(text: str) -> str:
    import math

    values = _ints(text)
    return "".join(f"{math.gcd(a, b)} {a * b // math.gcd(a, b)}\n" for a, b in zip(values[1::2], values[2::2]))


def _words_in(r: random.Random) -> str:
    words = ["".join(r.choice("abcde") for _ in range(r.randint(1, 6))) for _ in range(r.randint(1, 300))]
    return " ".join(words) + "\n"


def _words_out(text: str) -> str:
    words = text.split()
    counts: dict[str, int] = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    return f"{len(words)} {len(counts)} {max(sorted(counts), key=lambda k: counts[k])}\n"


def _search_in(r: random.Random) -> str:
    n, q = r.randint(1, 1000), r.randint(1, 1000)
    a = sorted(r.randint(0, 10**6) for _ in range(n))
    return f"{n} {q}\n{' '.join(map(str, a))}\n{' '.join(str(r.randint(0, 10**6)) for _ in range(q))}\n"


def _search_out(text: str) -> str:
    import bisect

    values = _ints(text)
    n, q = values[0], values[1]
    a = values[2 : 2 + n]
    return "".join(f"{bisect.bisect_right(a, x)}\n" for x in values[2 + n : 2 + n + q])


CASES: list[Case] = [
    ("sum", _sum_in, _sum_out,
     "#include <bits/stdc++.h>\nint main(){int n;std::cin>>n;long long s=0,x;while(n--){std::cin>>x;s+=x;}std::cout<<s<<'\\n';}\n",
     "input()\nprint(sum(map(int, input().split())))\n"),
    ("distinct", _sort_in, _sort_out,
     "#include <bits/stdc++.h>\nusing namespace std;\nint main(){int n;cin>>n;set<int>s;while(n--){int x;cin>>x;s.insert(x);}"
     "cout<<s.size()<<'\\n';bool f=1;for(int x:s){if(!f)cout<<' ';cout<<x;f=0;}cout<<'\\n';}\n",
     "input()\nv = sorted(set(map(int, input().split())))\nprint(len(v))\nprint(*v)\n"),
    ("prefix", _prefix_in, _prefix_out,
     "#include <bits/stdc++.h>\nusing namespace std;\nint main(){ios::sync_with_stdio(0);cin.tie(0);int n,q;cin>>n>>q;"
     "vector<long long>p(n+1);for(int i=1;i<=n;i++){cin>>p[i];p[i]+=p[i-1];}while(q--){int a,b;cin>>a>>b;cout<<p[b]-p[a-1]<<'\\n';}}\n",
     "import sys\nd = sys.stdin.read().split()\nn, q = int(d[0]), int(d[1])\np = [0]\nfor x in d[2:2 + n]:\n    p.append(p[-1] + int(x))\n"
     "r = d[2 + n:]\nprint('\\n'.join(str(p[int(r[2 * i + 1])] - p[int(r[2 * i]) - 1]) for i in range(q)))\n"),
    ("grid", _grid_in, _grid_out,
     "#include <bits/stdc++.h>\nusing namespace std;\nint main(){int h,w;cin>>h>>w;vector<string>g(h);for(auto&r:g)cin>>r;"
     "vector<vector<int>>d(h,vector<int>(w,-1));queue<pair<int,int>>q;d[0][0]=0;q.push({0,0});int dy[]={1,-1,0,0},dx[]={0,0,1,-1};"
     "while(!q.empty()){auto[y,x]=q.front();q.pop();for(int k=0;k<4;k++){int a=y+dy[k],b=x+dx[k];"
     "if(a>=0&&a<h&&b>=0&&b<w&&g[a][b]=='.'&&d[a][b]<0){d[a][b]=d[y][x]+1;q.push({a,b});}}}cout<<d[h-1][w-1]<<'\\n';}\n",
     "from collections import deque\nh, w = map(int, input().split())\ng = [input() for _ in range(h)]\nd = {(0, 0): 0}\nq = deque([(0, 0)])\n"
     "while q:\n    y, x = q.popleft()\n    for a, b in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):\n"
     "        if 0 <= a < h and 0 <= b < w and g[a][b] == '.' and (a, b) not in d:\n            d[(a, b)] = d[(y, x)] + 1\n            q.append((a, b))\n"
     "print(d.get((h - 1, w - 1), -1))\n"),
    ("knapsack", _knap_in, _knap_out,
     "#include <bits/stdc++.h>\nusing namespace std;\nint main(){int n,c;cin>>n>>c;vector<long long>b(c+1);while(n--){int w,v;cin>>w>>v;"
     "for(int k=c;k>=w;k--)b[k]=max(b[k],b[k-w]+v);}cout<<b[c]<<'\\n';}\n",
     "n, c = map(int, input().split())\nb = [0] * (c + 1)\nfor _ in range(n):\n    w, v = map(int, input().split())\n"
     "    for k in range(c, w - 1, -1):\n        b[k] = max(b[k], b[k - w] + v)\nprint(b[c])\n"),
    ("gcd", _gcd_in, _gcd_out,
     "#include <bits/stdc++.h>\nint main(){int t;std::cin>>t;while(t--){long long a,b;std::cin>>a>>b;long long g=std::gcd(a,b);"
     "std::cout<<g<<' '<<a/g*b<<'\\n';}}\n",
     "import math\nfor _ in range(int(input())):\n    a, b = map(int, input().split())\n    print(math.gcd(a, b), a * b // math.gcd(a, b))\n"),
    ("words", _words_in, _words_out,
     "#include <bits/stdc++.h>\nusing namespace std;\nint main(){map<string,int>c;string s;int n=0;while(cin>>s){c[s]++;n++;}"
     "string best;int m=0;for(auto&[k,v]:c)if(v>m){m=v;best=k;}cout<<n<<' '<<c.size()<<' '<<best<<'\\n';}\n",
     "w = input().split()\nc = {}\nfor x in w:\n    c[x] = c.get(x, 0) + 1\nprint(len(w), len(c), max(sorted(c), key=lambda k: c[k]))\n"),
    ("search", _search_in, _search_out,
     "#include <bits/stdc++.h>\nusing namespace std;\nint main(){ios::sync_with_stdio(0);cin.tie(0);int n,q;cin>>n>>q;vector<int>a(n);"
     "for(auto&x:a)cin>>x;while(q--){int x;cin>>x;cout<<(upper_bound(a.begin(),a.end(),x)-a.begin())<<'\\n';}}\n",
     "import bisect, sys\nd = sys.stdin.read().split()\nn, q = int(d[0]), int(d[1])\na = list(map(int, d[2:2 + n]))\n"
     "print('\\n'.join(str(bisect.bisect_right(a, int(x))) for x in d[2 + n:2 + n + q]))\n"),
]
TESTS_PER_PROBLEM = 5

# Accepts the expected answer's tokens in any whitespace: the comparison a checker replaces.
TOKENS_CHECKER = "import sys\nout, ans = (open(p).read().split() for p in sys.argv[2:4])\nsys.exit(0 if out == ans else 1)\n"


def problems(language: str, seed: int = 0, checker: Checker | None = None) -> list[tuple[Problem, str]]:
    rng = random.Random(seed)
    made = []
    for name, make_input, answer, cpp, python in CASES:
        tests = []
        for _ in range(TESTS_PER_PROBLEM):
            stdin = make_input(rng)
            tests.append(IoTest(stdin, answer(stdin)))
        made.append((Problem(id=name, language=language, tests=tuple(tests), checker=checker), cpp if language == "cpp" else python))
    return made


def host_gxx(cases: list[tuple[Problem, str]], tag: str) -> float:
    """Bare g++ on the host, one program at a time: compile, then each test. Seconds."""
    work = Path(tempfile.mkdtemp(prefix="bench-contest-"))
    try:
        began = time.perf_counter()
        for problem, source in cases:
            (work / "main.cpp").write_text(source + f"// {tag}\n")
            subprocess.run(["g++", *CPP_FLAGS, "-o", str(work / "main"), str(work / "main.cpp")], check=True)
            for test in problem.tests:
                assert isinstance(test, IoTest)
                done = subprocess.run([str(work / "main")], input=test.stdin, capture_output=True, text=True, check=True)
                assert done.stdout.split() == test.expected_stdout.split(), problem.id
        return time.perf_counter() - began
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def through_pool(pool: SandboxPool, cases: list[tuple[Problem, str]], tag: str) -> float:
    began = time.perf_counter()
    results = await asyncio.gather(*(pool.run(problem, source + (f"// {tag}\n" if problem.language == "cpp" else f"# {tag}\n")) for problem, source in cases))
    elapsed = time.perf_counter() - began
    bad = [(p.id, r.verdict.value, r.tests[0].detail[:200]) for (p, _), r in zip(cases, results) if r.verdict is not Verdict.PASSED]
    assert not bad, bad
    return elapsed


async def measure(rounds: int, workers: int) -> dict[str, list[float]]:
    cpp, python = problems("cpp"), problems("python")
    checked = problems("python", checker=Checker("python", TOKENS_CHECKER))
    humaneval = humaneval_tasks()
    times: dict[str, list[float]] = {k: [] for k in ("host", "cold", "warm", "python", "humaneval", "checked")}
    async with SandboxPool(SandboxConfig(workers=workers)) as pool:
        await through_pool(pool, python, "warm-up")
        for r in range(rounds):  # interleaved, so that load on the machine hits every method alike
            times["host"].append(host_gxx(cpp, f"host {r}"))
            times["cold"].append(await through_pool(pool, cpp, f"round {r}"))
            times["warm"].append(await through_pool(pool, cpp, f"round {r}"))
            times["python"].append(await through_pool(pool, python, f"round {r}"))
            times["checked"].append(await through_pool(pool, checked, f"round {r}"))
            began = time.perf_counter()
            results = await asyncio.gather(*(pool.run(t.problem, t.canonical_program) for t in humaneval))
            times["humaneval"].append(time.perf_counter() - began)
            assert all(result.verdict is Verdict.PASSED for result in results)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("g++") is None:
        print("the host baseline needs g++ on the host: apt-get install -y g++", file=sys.stderr)
        return 2
    times = asyncio.run(measure(args.rounds, args.workers))
    n = len(CASES)
    rate = {k: (164 if k == "humaneval" else n) / statistics.median(v) for k, v in times.items()}
    print(f"{n} programs x {TESTS_PER_PROBLEM} stdin tests, pool of {args.workers}, medians of {args.rounds} rounds (programs/s)")
    print(f"  C++, bare g++ on the host, one at a time (baseline):  {rate['host']:7.2f}")
    print(f"  C++ through the pool, compiled (cache miss):          {rate['cold']:7.2f}   {rate['cold'] / rate['host']:.1f}x the baseline")
    print(f"  C++ through the pool, binary cached (cache hit):      {rate['warm']:7.2f}   {rate['warm'] / rate['host']:.1f}x")
    print(f"  Python stdin programs through the pool:               {rate['python']:7.2f}")
    print(f"  the same, judged by a Python checker:                 {rate['checked']:7.2f}   {rate['checked'] / rate['python']:.2f}x the plain comparison")
    print(f"  HumanEval function-style solutions (164), same pool:  {rate['humaneval']:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
