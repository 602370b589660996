"""Getting a program out of a model's completion.

Small models answer in every shape: one fenced block, several, a fence never closed
(generation hit the token limit), bare code, prose around code, the function's signature
restated or not. `extract_code` returns the program to score:

1. Fenced blocks (```python / ```py / ``` ... ```), an unclosed last fence included. Among
   several, the one that defines the entry point wins; else the one that compiles and is
   longest; blocks that only call or test the function are dropped.
2. No fence: the completion itself, trimmed of trailing prose (lines after the last one that
   parses as part of the program).
3. If the code does not define the entry point but the prompt's signature is given, it is
   taken as a function body (HumanEval style: the prompt ends inside the function).

For another language (`language="cpp"`, ...): the longest fenced block tagged with one of its
names (```cpp, ```c++, ```java, ```js, ...) or untagged; without one, the completion itself.
"""

from __future__ import annotations

import ast
import re

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_LANGS = {"", "python", "py", "python3", "py3"}
FENCE_NAMES = {
    "cpp": {"cpp", "c++", "cc", "cxx", "c"},
    "java": {"java"},
    "javascript": {"javascript", "js", "node", "nodejs"},
}


def fenced_blocks(text: str) -> list[str]:
    """Contents of ``` fences whose language is Python or unnamed, in order; an unclosed final
    fence counts (generation stopped inside it)."""
    return [body for lang, body in _FENCE.findall(text) if lang.lower() in _CODE_LANGS]


def _compiles(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _defines(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return bool(re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE))
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name for node in ast.walk(tree))


def _longest_parsing_prefix(code: str) -> str:
    """The longest run of leading lines that parses: drops prose or a cut-off tail."""
    lines = code.rstrip().split("\n")
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end])
        if _compiles(candidate):
            return candidate.rstrip() + "\n"
    return code


def _pick(blocks: list[str], entry_point: str) -> str:
    if entry_point:
        defining = [b for b in blocks if _defines(b, entry_point)]
        if defining:
            return max(defining, key=lambda b: (_compiles(b), len(b)))
    return max(blocks, key=lambda b: (_compiles(b), len(b)))


def extract_code(completion: str, entry_point: str = "", prompt_prefix: str = "", response_prefix: str = "", language: str = "python") -> str:
    """The program in `completion`. `prompt_prefix`: for prompts that end inside the function
    (HumanEval), the prompt, prepended when the completion is only the body.
    `response_prefix`: text the answer was made to start with (prefilled into the assistant's
    turn, e.g. an opening fence and the function's signature); the completion continues it.
    `language`: the program's language (module docstring)."""
    completion = response_prefix + completion
    if language in FENCE_NAMES:
        names = FENCE_NAMES[language] | {""}
        tagged = [body for lang, body in _FENCE.findall(completion) if lang.lower() in names]
        return max(tagged, key=len) if tagged else completion
    blocks = fenced_blocks(completion)
    code = _pick(blocks, entry_point) if blocks else completion
    if not _compiles(code):
        code = _longest_parsing_prefix(code)
    if entry_point and prompt_prefix and not _defines(code, entry_point):
        body = code if code.startswith((" ", "\t")) else _indent(code)
        joined = prompt_prefix + body
        if _compiles(joined):
            return joined
    return code


def _indent(code: str) -> str:
    return "".join(("    " + line if line.strip() else line) for line in code.splitlines(True))


def needed_imports(prompt: str) -> str:
    """The prompt's own import lines (e.g. `from typing import List`): models often drop them
    while using the names, so they are sent as the problem's setup_code."""
    lines = [
        line
        for line in prompt.splitlines()
        if re.match(r"^(from\s+\S+\s+import\s+.+|import\s+\S+.*)$", line.strip()) and not line.startswith((" ", "\t"))
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def prompt_setup(prompt: str, entry_point: str) -> str:
    """Everything a HumanEval-style prompt defines besides the entry point (its imports, helper
    functions such as `encode_shift` / `poly`, constants), as trusted setup code. The test then
    reads those names from the setup, never from the program, which may redefine them."""
    try:
        module = ast.parse(prompt)
    except SyntaxError:
        return needed_imports(prompt)
    kept = [
        ast.get_source_segment(prompt, node) or ast.unparse(node)
        for node in module.body
        if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point)
        and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
    ]
    return "\n\n".join(kept) + ("\n" if kept else "")
