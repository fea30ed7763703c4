"""No function in the project's code or tests is over 50 lines: each decision reads at once."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 50


def test_no_function_is_longer_than_fifty_lines() -> None:
    long = []
    files = [
        path
        for folder in ("sessions_app", "standin", "assistant_site", "bench", "tests")
        for path in (ROOT / folder).rglob("*.py")
        if "migrations" not in path.parts
    ]
    assert len(files) > 50  # the scan sees the tree
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > LIMIT:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    assert long == []
