"""static/js/messages.js has a plain sentence for every code the share page can be told.

The tables are read from the module's source: every CloseCode, ErrorCode, model failure
code and LiveSession.EndReason needs an entry, so a code added without a sentence fails.
"""

import re
from pathlib import Path

import pytest

from sessions_app.model_errors import AT_SETUP, MID_SESSION, model_failure
from sessions_app.models import LiveSession
from sessions_app.protocol import CloseCode, ErrorCode

JS = Path(__file__).resolve().parents[2] / "static" / "js"
MESSAGES = (JS / "messages.js").read_text()
SOCKET = (JS / "socket.js").read_text()
# The daily budget refuses a start with this error code (no session follows it).
BUDGET = "budget_exhausted"
CONNECTION_LOST = 1006  # the browser's close code for a connection dropped without a close


def table(source: str, name: str) -> dict[str, str]:
    """The entries of ``export const <name> = { ... };``: key -> the rest of its line."""
    block = re.search(
        rf"^export const {name} = (?:Object\.freeze\()?\{{\n(.*?)^\}}", source, re.M | re.S
    )
    assert block is not None, f"{name} is missing"
    entries = re.findall(r"^  (\[[\w.]+\]|\w+): (.*)$", block.group(1), re.M)
    keys = [key for key, _ in entries]
    assert len(keys) == len(set(keys)), f"{name} repeats a key: {keys}"
    return dict(entries)


def close_names(entries: dict[str, str]) -> set[str]:
    """``[CloseCode.NAME]`` keys as NAME, other computed keys as written."""
    return {key.removeprefix("[CloseCode.").removesuffix("]").strip("[]") for key in entries}


def model_failure_codes() -> set[str]:
    """Every error code model_errors.py can give, whatever the service's close."""
    closes = [(1008, "models/x is not found"), (1008, "other"), (1007, "bad"), (1011, "x")]
    closes += [(None, ""), (1006, "")]
    return {
        model_failure(code, reason, model="m", during=during).error_code.value
        for code, reason in closes
        for during in (AT_SETUP, MID_SESSION)
    }


def test_every_error_code_has_a_sentence() -> None:
    errors = table(MESSAGES, "ERRORS")
    expected = {code.value for code in ErrorCode} | model_failure_codes()
    assert sorted(expected - set(errors)) == []
    assert sorted(set(errors) - expected) == []  # no sentence for a code nobody sends


def test_the_model_failures_are_all_there() -> None:
    assert model_failure_codes() == {
        "model_unavailable",
        "model_refused",
        "model_error",
        "upstream_unavailable",
        "upstream_error",
    }


def test_every_close_code_has_a_sentence_and_the_page_knows_them_all() -> None:
    socket = table(SOCKET, "CloseCode")
    socket_codes = {name: int(value.split(",")[0]) for name, value in socket.items()}
    assert socket_codes == {code.name: int(code) for code in CloseCode}
    closes = close_names(table(MESSAGES, "CLOSES"))
    assert closes == {code.name for code in CloseCode} | {"CONNECTION_LOST"}
    assert f"export const CONNECTION_LOST = {CONNECTION_LOST};" in MESSAGES


def test_every_end_reason_has_a_sentence() -> None:
    ends = table(MESSAGES, "ENDS")
    assert set(ends) == set(LiveSession.EndReason.values)


@pytest.mark.parametrize("name", ["ERRORS", "CLOSES", "ENDS"])
def test_every_sentence_is_translatable_and_says_what_to_do(name: str) -> None:
    sentences = dict(re.findall(r"^const (\w+) = (.*)$", MESSAGES, re.M))
    for key, entry in table(MESSAGES, name).items():
        text = re.match(r"\{ text: (_\(|\w+)", entry)
        assert text is not None, f"{name}[{key}] has no text: {entry}"
        if text.group(1) != "_(":  # a named sentence, defined once above the tables
            assert sentences[text.group(1)].startswith(("_(", "naming(")), key
        actions = re.findall(r"action: (\w+)", entry)
        assert set(actions) <= {"RETRY", "LOG_IN"}, key


def test_the_fatal_errors_are_those_after_which_the_server_ends_the_session() -> None:
    errors = table(MESSAGES, "ERRORS")
    fatal = {code for code, entry in errors.items() if "fatal: true" in entry}
    assert fatal == model_failure_codes() | {"internal_error", BUDGET}
