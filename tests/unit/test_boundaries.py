"""The SDK boundary: only sessions_app/live/ imports google-genai, and live/ stands alone."""

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "sessions_app"


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def sources(under: Path) -> list[Path]:
    """The Python files below ``under``, migrations left out."""
    return [path for path in under.rglob("*.py") if "migrations" not in path.parts]


def test_only_the_live_package_imports_the_sdk() -> None:
    outside = [path for path in sources(APP) if APP / "live" not in path.parents]
    assert outside  # the scan sees the rest of the app
    leaks = {
        str(path.relative_to(APP)): sorted(name for name in imports(path) if "google" in name)
        for path in outside
    }
    assert {path: names for path, names in leaks.items() if names} == {}


def test_the_live_package_imports_nothing_else_of_the_app() -> None:
    live = sources(APP / "live")
    assert any("google.genai" in imports(path) for path in live)  # the scan reads imports
    reaching = {
        str(path.relative_to(APP)): sorted(
            name
            for name in imports(path)
            if name.startswith("sessions_app") and not name.startswith("sessions_app.live")
        )
        for path in live
    }
    assert {path: names for path, names in reaching.items() if names} == {}
