"""The house rules of ``src/mianzhang``, kept true by a test (issue 14's measures).

* no module over 400 lines (exceptions listed below, each with its reason);
* no function over 50 lines, except tables (a function whose body is one data literal);
* nesting depth at most 4 inside a function (if/for/while/with/try/match, not counting the
  ``def`` itself; nested functions and classes are measured on their own);
* imports only go down the layers: wire format < responses < event log < features < top floor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mianzhang"

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50
MAX_DEPTH = 4

# module (relative to src/mianzhang) -> why it may be longer
LONG_MODULES: dict[str, str] = {
    "_errors.py": "the one exception tree, read against the drawing in its docstring",
}

_NESTING = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.TryStar,
    ast.Match,
)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)

# layer of each top-level part of the package; a module may import only its own layer or lower
LAYERS: dict[str, int] = {
    "_sse": 1,
    "_errors": 0,
    "_tasks": 0,
    "_error_body": 0,
    "_responses": 2,
    "log": 3,
    "llm": 4,
    "channels": 4,
    "jobs": 4,
    "files": 4,
    "tails": 4,
    "auth": 4,
    "compat": 4,
    "chats": 4,
    "server": 5,
    "client": 5,
    "cli": 6,
    "__main__": 6,
    "__init__": 6,
}


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _depth(node: ast.AST, depth: int = 0) -> int:
    deepest = depth
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _SCOPES):
            continue
        inner = depth + 1 if isinstance(child, _NESTING) else depth
        deepest = max(deepest, _depth(child, inner))
    return deepest


def _is_table(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    body = [
        s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
    ]
    return (
        len(body) == 1
        and isinstance(body[0], ast.Return | ast.Assign)
        and isinstance(body[0].value, ast.Dict | ast.List | ast.Tuple | ast.Call)
    )


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _rel(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def test_no_long_modules() -> None:
    long = {
        _rel(p): n
        for p in _modules()
        if (n := p.read_text().count("\n")) > MAX_MODULE_LINES and _rel(p) not in LONG_MODULES
    }
    assert long == {}


def test_no_long_or_deep_functions() -> None:
    offenders = []
    for path in _modules():
        for fn in _functions(ast.parse(path.read_text())):
            length = (fn.end_lineno or fn.lineno) - fn.lineno + 1
            if length > MAX_FUNCTION_LINES and not _is_table(fn):
                offenders.append(f"{_rel(path)}:{fn.lineno} {fn.name}: {length} lines")
            if (depth := _depth(fn)) > MAX_DEPTH:
                offenders.append(f"{_rel(path)}:{fn.lineno} {fn.name}: depth {depth}")
    assert offenders == []


def _part(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("path", _modules(), ids=_rel)
def test_imports_go_down(path: Path) -> None:
    own = LAYERS[_part(_rel(path).removesuffix(".py").replace("/", "."))]
    package = _rel(path).removesuffix(".py").split("/")[:-1]
    upward = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = ".".join([*base, node.module or ""]).strip(".")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mianzhang."):
            target = (node.module or "").removeprefix("mianzhang.")
        else:
            continue
        if not target:
            continue
        layer = LAYERS.get(_part(target))
        if layer is not None and layer > own:
            upward.append(f"line {node.lineno}: {target}")
    assert upward == []
