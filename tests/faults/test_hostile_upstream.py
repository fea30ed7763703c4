"""Hostile upstream traffic: whatever the model service sends, the session lives on.

A Hypothesis fuzzer has the stand-in send random and mutated server messages during one
live session (full ASGI stack, the real google-genai SDK over TLS): unknown kinds, wrong
JSON types at any path, strings of about a megabyte, base64 garbage and odd lengths in
audio, tool calls with and without ids, negative, huge and fractional token counts,
turnComplete out of turn, goAway and resumption handles that send the relay through a
hand-over or a fresh start, and text frames that are no JSON object. Each example pushes
1 to 4 of them, then drives a normal typed turn. Throughout, every frame the browser gets
is held to the documented protocol, and the session must stay live (same session id, no
``ended``, no error). At the end every turn the browser saw completed is stored, in order,
with no duplicate and no gap.

The Hypothesis run is synchronous, so it runs in a worker thread and hands each example to
the test's event loop (which serves the site and the stand-in) with
``asyncio.run_coroutine_threadsafe``. The regression tests below it pin each fault the
fuzzer found, one cheap deterministic case each.
"""

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sessions_app.live import events, relay
from sessions_app.session import transcripts
from sessions_app.session.conversation import Conversation, live_conversations
from standin import StandIn, hostile
from tests.conftest import Browser
from tests.faults.hostile_messages import check_browser_frame, describe, hostile_messages
from tests.leaks import SCANNER
from tests.records import eventually, stored

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # The SDK warns of every enum value it does not know; the fuzzer sends thousands.
    pytest.mark.filterwarnings("ignore::UserWarning:google.genai._common"),
]

T = TypeVar("T")
EXAMPLES = 500
EXAMPLE_TIMEOUT_S = 60.0
TURN_TIMEOUT_S = 20.0
Groups = dict[tuple[str, str], list[str]]


@pytest.fixture
def fast_turns(standin: StandIn, settings: Any) -> StandIn:
    """Short replies and no typing limit: hundreds of turns in one session, quickly."""
    standin.behaviour.reply_audio_s = 0.2
    settings.SHARE_MAX_TEXTS_PER_MIN = 1_000_000
    return standin


class Fuzz:
    """One live session driven through hostile examples, and what went through it."""

    def __init__(self, browser: Browser, standin: StandIn) -> None:
        self.browser = browser
        self.standin = standin
        self.session_id = ""
        self.examples = 0
        self.sent = 0  # hostile messages put on the wire
        self.undelivered = 0  # their connection closed first (a hand-over under way)
        self.turns = 0  # typed turns driven
        self.audio_frames = 0

    async def start(self) -> None:
        """Open the socket and start the session."""
        await self.browser.connect()
        live = await self.browser.start()
        self.session_id = live["session_id"]

    async def example(self, batch: list[Any]) -> None:
        """Push a batch of hostile messages on the newest connection, then drive a turn."""
        self.examples += 1
        standin = self.standin
        await standin.wait_for(lambda: hostile.newest_open_connection(standin) is not None)
        target = hostile.newest_open_connection(standin)
        assert target is not None
        for message in batch:
            if await hostile.send_hostile(self.standin, message, target):
                self.sent += 1
            else:
                self.undelivered += 1
        await self.turn(f"q-{self.examples}")

    async def turn(self, text: str) -> None:
        """Type ``text`` and read until the model's answer to it is over (turn_complete)."""
        self.turns += 1
        await self.browser.send(type="text", text=text)
        phrase = f'You said: "{text}".'
        said = ""
        async with asyncio.timeout(TURN_TIMEOUT_S):
            while True:
                message = await self.read()
                if message is None:
                    continue
                if message["type"] == "transcript" and message["role"] == "model":
                    said += message["text"]
                elif message["type"] == "turn_complete" and phrase in said:
                    return

    async def read(self) -> dict[str, Any] | None:
        """The next frame, checked; the JSON message (None for audio)."""
        raw = await self.browser.ws.receive_output(TURN_TIMEOUT_S)
        assert raw["type"] != "websocket.close", f"socket closed ({raw.get('code')})"
        SCANNER.scan("ws", raw.get("text") or raw.get("bytes") or b"")
        message = check_browser_frame(raw)
        if message is None:
            self.audio_frames += 1
            await self.browser.send(type="ack", audio=self.audio_frames)
            return None
        self.browser.messages.append(message)
        assert message["type"] != "error", message
        if message["type"] == "status":
            assert message["session_id"] == self.session_id, message
            assert message["state"] != "ended", message
        return message


def expected_lines(messages: list[dict[str, Any]]) -> Groups:
    """The lines each completed turn the browser saw must be stored as, by (role, source).

    A typed line is its echo; a speaker's line is the fragments of one turn, joined.
    """
    pending: dict[int, dict[tuple[str, str], list[str]]] = defaultdict(lambda: defaultdict(list))
    expected: Groups = defaultdict(list)
    for message in messages:
        if message["type"] == "transcript":
            key = (message["role"], message["source"])
            if message.get("final"):
                expected[key].append(message["text"])
            else:
                pending[message["turn"]][key].append(message["text"])
        elif message["type"] == "turn_complete":
            for key, parts in pending.pop(message["turn"], {}).items():
                if text := "".join(parts).strip():
                    expected[key].append(text)
    return dict(expected)


async def stored_groups(session_id: str) -> tuple[Groups, list[int]]:
    """The stored lines by (role, source), and their sequence numbers."""
    _, lines = await stored(session_id)
    groups: Groups = defaultdict(list)
    for _, role, source, text in lines:
        groups[(role, source)].append(text)
    return dict(groups), [sequence for sequence, *_ in lines]


def lost_lines(expected: Groups, found: Groups) -> int:
    """How many expected lines are not stored."""
    want = Counter((key, text) for key, texts in expected.items() for text in texts)
    have = Counter((key, text) for key, texts in found.items() for text in texts)
    return sum((want - have).values())


def conversation_of(session_id: str) -> Conversation:
    """The live conversation of ``session_id`` in this process."""
    (found,) = [c for c in live_conversations() if str(c.session_id) == session_id]
    return found


def run_examples(fuzz: Fuzz, loop: asyncio.AbstractEventLoop) -> None:
    """Run the Hypothesis examples (in this worker thread) against the live session."""

    def on_loop(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(EXAMPLE_TIMEOUT_S)

    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
        phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(batch=st.lists(hostile_messages(), min_size=1, max_size=4))
    def example(batch: list[Any]) -> None:
        try:
            on_loop(fuzz.example(batch))
        except BaseException:
            print("hostile batch:", [describe(m) for m in batch])  # noqa: T201 - on failure
            raise

    example()


async def test_hostile_server_messages_never_end_the_session_nor_lose_a_turn(
    fast_turns: StandIn, cookie: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fuzz = Fuzz(Browser(cookie), fast_turns)
    await fuzz.start()
    await asyncio.to_thread(run_examples, fuzz, asyncio.get_running_loop())
    await fuzz.turn("final")  # after the last hostile message

    conversation = conversation_of(fuzz.session_id)
    assert not conversation.ended
    assert conversation.relay is not None
    skipped = conversation.relay.unreadable_messages
    expected = expected_lines(fuzz.browser.messages)

    async def all_stored() -> tuple[Groups, list[int]] | None:
        found, sequences = await stored_groups(fuzz.session_id)
        return (found, sequences) if found == expected else None

    try:
        found, sequences = await eventually(all_stored, timeout=15, what="every turn stored")
    finally:
        found, sequences = await stored_groups(fuzz.session_id)
        report(fuzz, expected, found, skipped)
    assert sequences == list(range(1, len(sequences) + 1))  # no gap, no duplicate
    assert found[("user", "typed")] == [f"q-{n}" for n in range(1, EXAMPLES + 1)] + ["final"]
    assert fuzz.examples == EXAMPLES
    assert fuzz.sent >= EXAMPLES
    assert sum(skipped.values()) > 0  # the relay did meet messages it could not read
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage()[:200] for r in errors]

    open_links = await eventually(lambda: only_one_open(fuzz.standin), what="one connection open")
    assert open_links == [hostile.newest_open_connection(fuzz.standin)]  # none left behind

    await fuzz.browser.send(type="stop")
    await fuzz.browser.expect("status", state="ended", timeout=10)
    session, _ = await stored(fuzz.session_id)
    assert (session.status, session.end_reason) == ("ended", "client_stop")
    totals = [m for m in fuzz.browser.messages if m["type"] == "usage"][-1]
    assert session.total_tokens == totals["total_tokens"]  # what the page showed is stored
    assert session.prompt_tokens_by_modality == totals["prompt_tokens_by_modality"]


async def only_one_open(standin: StandIn) -> list[int] | None:
    """The indexes of the open upstream connections, once there is only one."""
    open_links = [record.index for record in standin.connections if not record.closed]
    return open_links if len(open_links) == 1 else None


def report(fuzz: Fuzz, expected: Groups, found: Groups, skipped: dict[str, int]) -> None:
    """Print the figures of the run (shown with ``-s``, and on failure)."""
    states = Counter(m["state"] for m in fuzz.browser.messages if m["type"] == "status")
    completed = sum(1 for m in fuzz.browser.messages if m["type"] == "turn_complete")
    print(  # noqa: T201 - the figures the fault table reports
        f"\nhostile upstream: {fuzz.examples} examples, {fuzz.sent} hostile messages sent"
        f" ({fuzz.undelivered} not delivered: connection closed first), {fuzz.turns} typed"
        f" turns driven, {completed} turns completed, {sum(map(len, expected.values()))}"
        f" lines expected, {sum(map(len, found.values()))} stored,"
        f" {lost_lines(expected, found)} lost; {fuzz.audio_frames} audio frames;"
        f" {len(fuzz.standin.connections)} upstream connections kept; status {dict(states)};"
        f" skipped or repaired upstream: {sum(skipped.values())} {dict(skipped)}"
    )


# Regressions: each fault the fuzzer found, pinned by one deterministic case.


async def live_session(browser: Browser) -> str:
    """Connect, start a session and return its id."""
    await browser.connect()
    return str((await browser.start())["session_id"])


async def typed_turn(browser: Browser, text: str) -> dict[str, Any]:
    """Type ``text`` and wait for the end of the answer to it."""
    await browser.send(type="text", text=text)
    while True:
        done = await browser.expect("turn_complete", timeout=10)
        if f'You said: "{text}".' in browser.transcript("model", done["turn"]):
            return done


async def stop(browser: Browser) -> None:
    """Stop the session and wait until it ended: every line is stored then."""
    await browser.send(type="stop")
    await browser.expect("status", state="ended", timeout=10)


def states(browser: Browser) -> list[str]:
    """The ``status`` states the browser saw, in order."""
    return [m["state"] for m in browser.messages if m["type"] == "status"]


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ("[1, 2]", "unreadable (AttributeError)"),  # JSON, but no object
        ('"a string"', "unreadable (AttributeError)"),
        ("7", "unreadable (TypeError)"),
        (hostile.deep_nesting(100_000), "unreadable (RecursionError)"),
        ('{"code": 1000, "x": 1}', "code+x"),  # the SDK raises APIError(1000): no close
        ('{"code": 503, "error": "overloaded"}', "code+error"),
        ('{"serverContent": null}', "serverContent"),
    ],
)
async def test_a_frame_the_sdk_chokes_on_is_skipped_without_a_reconnect(
    standin: StandIn, cookie: str, frame: str, kind: str
) -> None:
    browser = Browser(cookie)
    session_id = await live_session(browser)
    await standin.push_raw(frame)
    await typed_turn(browser, "after it")

    assert states(browser) == ["connecting", "live"]  # not ended, not even a reconnect
    assert len(standin.connections) == 1
    (conversation,) = [c for c in live_conversations() if str(c.session_id) == session_id]
    assert conversation.relay is not None
    assert conversation.relay.unreadable_messages == {kind: 1}
    await stop(browser)
    _, lines = await stored(session_id)
    assert lines[0][1:] == ("user", "typed", "after it")


async def test_usage_out_of_range_is_stored_in_range_and_later_turns_are_kept(
    standin: StandIn, cookie: str
) -> None:
    per_turn = standin.behaviour.prompt_tokens_per_turn = 100  # fixed: the range is tested
    browser = Browser(cookie)
    session_id = await live_session(browser)
    await typed_turn(browser, "one")
    await standin.push(
        hostile.usage(
            {"promptTokenCount": -1000, "responseTokenCount": 10**30},
            {"promptTokensDetails": [("AUDIO", -5), ("HOLOGRAM", 7)]},
        )
    )
    await typed_turn(browser, "two")
    shown = await browser.expect("usage")  # the session's totals, after the last turn
    await stop(browser)

    session, lines = await stored(session_id)
    assert [text for *_, text in lines][0::2] == ["one", "two"]  # nothing lost after it
    assert session.prompt_tokens == 2 * per_turn == shown["prompt_tokens"]  # -1000 held to 0
    assert session.response_tokens == shown["response_tokens"]
    assert session.response_tokens >= events.MAX_TOKEN_COUNT
    assert session.prompt_tokens_by_modality == {"TEXT": 2 * per_turn, "OTHER": 7}


async def test_a_text_with_a_nul_or_a_megabyte_long_is_cleaned_cut_and_stored(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    session_id = await live_session(browser)
    await standin.push(hostile.transcription("outputTranscription", "a\x00b\ud800c "))
    await standin.push(hostile.transcription("outputTranscription", hostile.inflate("x")))
    await standin.push(hostile.turn_complete())
    done = await browser.expect("turn_complete", timeout=10)
    await typed_turn(browser, "later")
    await stop(browser)

    shown = [m["text"] for m in browser.messages if m["type"] == "transcript"]
    assert shown[:2] == ["abc ", "x" * events.MAX_TEXT_CHARS]
    _, lines = await stored(session_id)
    assert lines[0][1:] == ("model", "speech", "abc " + "x" * events.MAX_TEXT_CHARS)
    assert [text for *_, text in lines][1] == "later"
    assert done["turn"] == 1


async def test_a_turn_that_never_ends_grows_its_line_no_further_than_the_cap(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    session_id = await live_session(browser)
    fragments = transcripts.MAX_LINE_CHARS // events.MAX_TEXT_CHARS + 5
    for _ in range(fragments):
        await standin.push(
            hostile.transcription("outputTranscription", "y" * events.MAX_TEXT_CHARS)
        )
    await standin.push(hostile.turn_complete())
    await browser.expect("turn_complete", timeout=10)
    await typed_turn(browser, "after")
    await stop(browser)

    shown = "".join(
        m["text"] for m in browser.messages if m["type"] == "transcript" and m.get("turn") == 1
    )
    expected = "y" * transcripts.MAX_LINE_CHARS + transcripts.CUT_MARK
    assert shown == expected
    _, lines = await stored(session_id)
    assert lines[0][1:] == ("model", "speech", expected)
    assert lines[1][3] == "after"


async def test_audio_of_an_odd_length_never_reaches_the_browser(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    await live_session(browser)
    await standin.push(hostile.pcm_audio(b"\x01\x02\x03"))
    await standin.push(hostile.pcm_audio(b"\x04\x05"))
    await standin.push(hostile.transcription("outputTranscription", "spoken"))
    await standin.push(hostile.turn_complete())
    await browser.expect("turn_complete", timeout=10)
    assert browser.audio == [b"\x04\x05"]


async def test_a_stream_of_made_up_kinds_is_counted_in_bounded_kinds(
    standin: StandIn, cookie: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sessions_app.live.relay")
    browser = Browser(cookie)
    session_id = await live_session(browser)
    for number in range(relay.UNREADABLE_KINDS + 10):
        await standin.push_unknown(f"madeUpKind{number}")
    await typed_turn(browser, "still here")

    (conversation,) = [c for c in live_conversations() if str(c.session_id) == session_id]
    assert conversation.relay is not None
    counts = conversation.relay.unreadable_messages
    assert len(counts) == relay.UNREADABLE_KINDS + 1
    assert counts[relay.OTHER_KINDS] == 10
    assert sum(counts.values()) == relay.UNREADABLE_KINDS + 10
    logged = [r for r in caplog.records if "skipped a server message" in r.getMessage()]
    assert len(logged) == relay.UNREADABLE_KINDS + 1


async def test_a_tool_call_without_an_id_is_not_run_and_does_not_hold_the_turn(
    standin: StandIn, cookie: str
) -> None:
    browser = Browser(cookie)
    session_id = await live_session(browser)
    calls = [
        hostile.function_call("save_note", {"title": "no id", "body": "b"}),
        hostile.function_call("save_note", {"title": "with id", "body": "b"}, "call-x"),
    ]
    await standin.push(hostile.tool_call(calls))
    note = await browser.expect("note", timeout=10)
    response = await standin.wait_for_tool_response("call-x")
    await typed_turn(browser, "after the calls")

    assert note["title"] == "with id"
    assert [m["title"] for m in browser.messages if m["type"] == "note"] == ["with id"]
    assert response["id"] == "call-x"
    assert len(standin.connections[0].tool_responses) == 1  # none for the call without id
    (conversation,) = [c for c in live_conversations() if str(c.session_id) == session_id]
    assert conversation.relay is not None
    assert conversation.relay.unreadable_messages == {"function call without an id": 1}
