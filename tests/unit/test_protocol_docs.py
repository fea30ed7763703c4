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


def documented_fields() -> dict[tuple[str, str], list[str]]:
    """The "Message fields" table: (direction, type) -> its fields, ``?`` kept."""
    rows = re.findall(r"^\| (server -> browser|browser -> server) \| `(\w+)` \| (.*) \|$",
                      section("Message fields"), re.M)  # fmt: skip
    return {(way, kind): re.findall(r"`(\w+)`(\??)", cells) for way, kind, cells in rows}


def test_every_server_message_and_field_is_documented_and_nothing_else() -> None:
    from dataclasses import fields

    from sessions_app import outbound

    in_code = {
        ("server -> browser", kind.type): [
            (spec.name, "?" if spec.default is None else "") for spec in fields(kind)
        ]
        for kind in outbound.MESSAGE_TYPES
    }
    documented = {
        key: value for key, value in documented_fields().items() if key[0][:6] == "server"
    }
    assert documented == in_code


def test_every_browser_message_and_field_is_documented_and_nothing_else() -> None:
    from sessions_app.protocol import FIELDS

    documented = {
        kind: sorted(name for name, _ in names)
        for (way, kind), names in documented_fields().items()
        if way == "browser -> server"
    }
    assert documented == {kind: sorted(allowed - {"type"}) for kind, allowed in FIELDS.items()}
