"""docs/protocol.md documents every end reason, error code and close code the server has."""

import re
from pathlib import Path

from sessions_app.models import LiveSession
from sessions_app.protocol import CloseCode, ErrorCode

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def section(title: str) -> str:
    """The text under a heading, up to the next heading of the same or a higher level."""
    heading = re.search(rf"^(#+) {re.escape(title)}\b.*$", DOC, re.M)
    assert heading is not None, title
    level = len(heading.group(1))
    rest = DOC[heading.end() :]
    following = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: following.start()] if following else rest


def test_every_end_reason_is_documented() -> None:
    reasons = section("End reasons")
    missing = [r for r in LiveSession.EndReason.values if f"`{r}`" not in reasons]
    assert missing == []


def test_every_error_code_has_a_row() -> None:
    errors = section("Errors")
    assert [c.value for c in ErrorCode if f"| `{c.value}` |" not in errors] == []


def test_every_close_code_has_a_row() -> None:
    codes = section("Close codes")
    assert [int(c) for c in CloseCode if f"| {int(c)} |" not in codes] == []


def test_every_model_of_the_table_has_a_row() -> None:
    from sessions_app.live.models import MODELS, RETIRED

    models = section("Models")
    assert [m for m in [*MODELS, *RETIRED] if f"`{m}`" not in models] == []


def test_every_model_failure_code_is_explained_for_people() -> None:
    refusals = section("When the model service refuses")
    for code in ("model_unavailable", "model_refused", "model_error"):
        assert f"`{code}`" in refusals
    for close in ("1007", "1008", "1011"):
        assert f"| {close}" in refusals
