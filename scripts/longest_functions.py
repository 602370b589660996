"""The longest functions of the packages (lines, place, name): python3 scripts/longest_functions.py [ROOT]."""
import ast
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
rows = []
for d in ("sandboxes", "reward_server", "reward_api", "trainer_client"):
    for p in (root / d).rglob("*.py"):
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                rows.append((node.end_lineno - node.lineno + 1, f"{p.relative_to(root)}:{node.lineno} {node.name}"))
rows.sort(reverse=True)
for n, name in rows[:10]:
    print(f"{n:4d} {name}")
print("functions over 60 lines:", sum(n > 60 for n, _ in rows), "of", len(rows))
