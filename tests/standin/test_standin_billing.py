"""The stand-in bills like the real service: every turn bills the whole context again.

Through the real google-genai SDK. The expected figures are stated from the documented
rates (ai.google.dev Live API and token counting docs, google-genai's MediaResolution
enum, GEMINI_LIVE.md): audio 32 tokens a second (input and output, silence too), a frame
258 tokens at the default media resolution, 66 at LOW and 256 at MEDIUM and HIGH, a text
about 4 characters a token. A sliding window drops the oldest user turns, never the
system instruction. No Django here.
"""

import itertools
import math
import time
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from standin import StandIn
from tests.standin.sdk import (
    audio_config,
    audio_parts,
    collect_turn,
    connect,
    fixed_usage,
    frame,
    handles,
    next_message,
    pcm_tone,
    send_audio,
    text_turn,
)

SYSTEM = "You are a terse test assistant."
NATIVE = "gemini-2.5-flash-native-audio-preview-12-2025"  # turn coverage: activity only
AUDIO_RATE = 32  # tokens a second of audio
FRAME = {  # tokens a frame, by the setup's mediaResolution
    None: 258,
    types.MediaResolution.MEDIA_RESOLUTION_LOW: 66,
    types.MediaResolution.MEDIA_RESOLUTION_MEDIUM: 256,
    types.MediaResolution.MEDIA_RESOLUTION_HIGH: 256,
}
REPLY_S = 0.6  # the default reply: six chunks of 0.1 s


def text_tokens(text: str) -> int:
    """About 4 characters a token, rounded up, per text item."""
    return math.ceil(len(text) / 4)


def billing_config(**fields: Any) -> types.LiveConnectConfig:
    """AUDIO replies with both transcriptions and the system instruction, plus ``fields``."""
    return audio_config(system_instruction=SYSTEM, **fields)


def window(trigger: int, target: int | None = None) -> types.ContextWindowCompressionConfig:
    """contextWindowCompression with a sliding window (``target`` None: its default)."""
    return types.ContextWindowCompressionConfig(
        trigger_tokens=trigger, sliding_window=types.SlidingWindow(target_tokens=target)
    )


def resuming(handle: str | None = None) -> types.SessionResumptionConfig:
    """Session resumption, from ``handle`` if any."""
    return types.SessionResumptionConfig(handle=handle)


def usage_of(turn: list[types.LiveServerMessage]) -> types.UsageMetadata:
    """The usageMetadata of a turn, as the SDK received it (on its final turnComplete)."""
    (usage,) = [m.usage_metadata for m in turn if m.usage_metadata]
    return usage


def details(entries: list[types.ModalityTokenCount] | None) -> dict[str, int]:
    """Per-modality details as {modality name: tokens}."""
    return {entry.modality.value: entry.token_count for entry in entries or []}


def sent_audio_tokens(turn: list[types.LiveServerMessage]) -> int:
    """32 tokens a second of the 24 kHz PCM16 reply audio the SDK received in ``turn``."""
    seconds = sum(len(data) for data in audio_parts(turn)) / 2 / 24000
    return round(AUDIO_RATE * seconds)


@pytest.mark.asyncio
@pytest.mark.parametrize("resolution", list(FRAME), ids=lambda r: getattr(r, "name", "default"))
async def test_audio_frames_and_texts_bill_what_the_rates_say(
    standin: StandIn, resolution: types.MediaResolution | None
) -> None:
    config = billing_config(media_resolution=resolution)
    async with connect(standin, config=config) as session:
        await send_audio(session, bytes(2 * 16000 * 3))  # exactly 3.0 s of silence
        for _ in range(2):
            await session.send_realtime_input(video=frame((64, 48)))
        turn = await text_turn(session, "What is on my screen?")

    text = text_tokens(SYSTEM) + text_tokens("What is on my screen?")
    audio, image = round(AUDIO_RATE * 3.0), 2 * FRAME[resolution]
    response = round(AUDIO_RATE * REPLY_S)
    usage = usage_of(turn)
    assert usage.prompt_token_count == text + audio + image
    assert details(usage.prompt_tokens_details) == {"TEXT": text, "AUDIO": audio, "IMAGE": image}
    assert (usage.response_token_count, details(usage.response_tokens_details)) == (
        response, {"AUDIO": response}
    )  # fmt: skip
    assert usage.total_token_count == text + audio + image + response
    record = standin.connections[0]
    assert len(record.frames) == 2
    sent = [reply["usageMetadata"] for reply in record.replies if "usageMetadata" in reply]
    assert record.usage == sent
    assert [item["promptTokenCount"] for item in sent] == [usage.prompt_token_count]


@pytest.mark.asyncio
async def test_every_turn_bills_the_whole_context_again(standin: StandIn) -> None:
    texts = ["one", "a second question", "and a third, longer question"]
    async with connect(standin, config=billing_config()) as session:
        prompts = []
        for text in texts:
            await send_audio(session, bytes(2 * 16000))  # 1.0 s of silence before each
            await session.send_realtime_input(video=frame())
            prompts.append(usage_of(await text_turn(session, text)).prompt_token_count)

    # Turn n bills the system instruction, n seconds of audio, n frames, n texts and the
    # n - 1 replies before it (0.6 s each).
    expected = [
        text_tokens(SYSTEM)
        + sum(text_tokens(text) for text in texts[: n + 1])
        + round(AUDIO_RATE * ((n + 1) * 1.0 + n * REPLY_S))
        + (n + 1) * FRAME[None]
        for n in range(len(texts))
    ]
    assert prompts == expected
    steps = [later - earlier for earlier, later in itertools.pairwise(prompts)]
    assert steps[0] > prompts[0]  # the second turn re-bills the first one's whole context
    assert all(step > 0 for step in steps)  # each turn costs more: the sum grows faster
    assert [usage["promptTokenCount"] for usage in standin.connections[0].usage] == expected


@pytest.mark.asyncio
async def test_seeded_history_of_any_role_is_billed_as_text(standin: StandIn) -> None:
    history = [
        types.Content(role="user", parts=[types.Part(text="Remember the number 42.")]),
        types.Content(role="model", parts=[types.Part(text="I will remember 42.")]),
        types.Content(role="user", parts=[types.Part(text="Which number?")]),
    ]
    async with connect(standin, config=billing_config()) as session:
        await session.send_client_content(turns=history, turn_complete=True)
        usage = usage_of(await collect_turn(session))

    texts = ["Remember the number 42.", "I will remember 42.", "Which number?"]
    text = text_tokens(SYSTEM) + sum(text_tokens(item) for item in texts)
    assert (usage.prompt_token_count, details(usage.prompt_tokens_details)) == (
        text, {"TEXT": text}
    )  # fmt: skip


def question(number: int) -> str:
    """A 40-character user text: 10 tokens."""
    return f"question {number:02d}".ljust(40, ".")


async def prompts_of_a_long_session(
    standin: StandIn, compression: types.ContextWindowCompressionConfig | None
) -> list[types.UsageMetadata]:
    """The usage of eight 10-token text turns, each answered by 0.5 s (16 tokens) of audio."""
    standin.behaviour.reply_audio_s = 0.5
    config = billing_config(context_window_compression=compression)
    async with connect(standin, config=config) as session:
        return [usage_of(await text_turn(session, question(n))) for n in range(8)]


@pytest.mark.asyncio
async def test_without_compression_the_context_only_grows(standin: StandIn) -> None:
    usages = await prompts_of_a_long_session(standin, None)

    # 8 (system) + 26 (each earlier text and its reply) + 10 (this text).
    assert [usage.prompt_token_count for usage in usages] == [18 + 26 * n for n in range(8)]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("target", "prompts"),
    [
        # Past 100 before a turn: the oldest user turns go until at most 75 is left...
        (75, [18, 44, 70, 96, 70, 96, 70, 96]),
        # ...or, with no target, at most half the trigger (50).
        (None, [18, 44, 70, 96, 44, 70, 96, 44]),
    ],
)
async def test_a_sliding_window_drops_the_oldest_user_turns_but_never_the_system_instruction(
    standin: StandIn, target: int | None, prompts: list[int]
) -> None:
    usages = await prompts_of_a_long_session(standin, window(100, target))

    assert [usage.prompt_token_count for usage in usages] == prompts
    cut_to = target if target is not None else 50
    for before, after in itertools.pairwise(usages):
        if after.prompt_token_count < before.prompt_token_count:  # a drop: at most the target
            assert after.prompt_token_count <= cut_to
    for usage in usages:
        assert usage.prompt_token_count <= 100
        by_modality = details(usage.prompt_tokens_details)
        kept_turns = by_modality.get("AUDIO", 0) // 16 + 1
        assert by_modality["TEXT"] == text_tokens(SYSTEM) + 10 * kept_turns  # system kept
        assert usage.prompt_token_count == sum(by_modality.values())
    assert standin.connections[0].setup["contextWindowCompression"]["triggerTokens"] == 100


@pytest.mark.asyncio
async def test_the_newest_user_turn_is_never_dropped(standin: StandIn) -> None:
    long_text = "x" * 480  # 120 tokens: alone more than the trigger
    config = billing_config(context_window_compression=window(100, 50))
    async with connect(standin, config=config) as session:
        await text_turn(session, "hi")
        usage = usage_of(await text_turn(session, long_text))

    # The first user turn and its reply go; the newest stays whole, above the target.
    text = text_tokens(SYSTEM) + text_tokens(long_text)
    assert (usage.prompt_token_count, details(usage.prompt_tokens_details)) == (
        text, {"TEXT": text}
    )  # fmt: skip


@pytest.mark.asyncio
async def test_the_window_cuts_where_an_utterance_starts(standin: StandIn) -> None:
    config = billing_config(context_window_compression=window(50, 40))
    async with connect(standin, config=config) as session:
        await text_turn(session, "hi")
        await send_audio(session, bytes(2 * 16000) + pcm_tone(440, 1.0))  # 1.0 s of silence
        usage = usage_of(await collect_turn(session))

    # 2.6 s of audio in all (92 tokens) pass the trigger: the text's user turn goes, with
    # its reply and the silence after it; the utterance's turn stays, from its first sound.
    assert details(usage.prompt_tokens_details) == {
        "TEXT": text_tokens(SYSTEM), "AUDIO": AUDIO_RATE * 1
    }  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.parametrize(("frames", "dropped"), [(396, False), (397, True)])
async def test_the_default_trigger_is_80_percent_of_a_128k_context_window(
    standin: StandIn, frames: int, dropped: bool
) -> None:
    config = audio_config(context_window_compression=types.ContextWindowCompressionConfig())
    async with connect(standin, config=config) as session:
        for _ in range(frames):
            await session.send_realtime_input(video=frame((16, 16)))
        usage = usage_of(await text_turn(session, "look"))

    # 396 frames and the text make 102,169 tokens, at most 80% of 128,000 (102,400); 397
    # make 102,427: the frames' user turn is dropped, down to the text's own.
    expected = 1 if dropped else frames * FRAME[None] + 1
    assert usage.prompt_token_count == expected
    assert len(standin.connections[0].frames) == frames


@pytest.mark.asyncio
async def test_a_resumed_connection_continues_the_ledger_and_a_fresh_one_starts_empty(
    standin: StandIn,
) -> None:
    low = types.MediaResolution.MEDIA_RESOLUTION_LOW
    config = billing_config(session_resumption=resuming(), media_resolution=low)
    async with connect(standin, config=config) as session:
        await send_audio(session, bytes(2 * 16000))  # 1.0 s
        await session.send_realtime_input(video=frame())  # at LOW: 66 tokens
        first = usage_of(await text_turn(session, "one"))
        [(handle, _)] = handles([await next_message(session)])
    config = billing_config(session_resumption=resuming(handle))
    async with connect(standin, config=config) as session:
        await session.send_realtime_input(video=frame())  # at the default resolution: 258
        resumed = usage_of(await text_turn(session, "two"))
    async with connect(standin, config=billing_config(session_resumption=resuming())) as session:
        fresh = usage_of(await text_turn(session, "three"))

    system = text_tokens(SYSTEM)
    assert first.prompt_token_count == system + 1 + AUDIO_RATE * 1 + 66
    assert details(resumed.prompt_tokens_details) == {
        "TEXT": system + text_tokens("one") + text_tokens("two"),
        "AUDIO": round(AUDIO_RATE * (1.0 + REPLY_S)),  # the user's second, the first reply
        "IMAGE": 66 + 258,  # each frame as the resolution was when it came
    }
    assert details(fresh.prompt_tokens_details) == {"TEXT": system + text_tokens("three")}
    assert standin.connections[1].resumed_from == handle


@pytest.mark.asyncio
async def test_idle_frames_are_not_billed_under_turn_includes_only_activity(
    standin: StandIn,
) -> None:
    standin.behaviour.activity_window_s = 0.0  # a text does not pull in the frames before it
    async with connect(standin, NATIVE, billing_config()) as session:
        await session.send_realtime_input(video=frame())  # idle: not in the context
        await session.send_realtime_input(activity_start=types.ActivityStart())
        await session.send_realtime_input(video=frame())  # during activity: counted
        await session.send_realtime_input(activity_end=types.ActivityEnd())
        await session.send_realtime_input(video=frame())  # idle again
        usage = usage_of(await text_turn(session, "and now?"))

    record = standin.connections[0]
    assert record.turn_coverage == "TURN_INCLUDES_ONLY_ACTIVITY"
    assert len(record.frames) == 3
    assert details(usage.prompt_tokens_details) == {
        "TEXT": text_tokens(SYSTEM) + text_tokens("and now?"),
        "IMAGE": FRAME[None],
    }


@pytest.mark.asyncio
async def test_an_utterance_bills_all_audio_and_the_reply_joins_the_context(
    standin: StandIn,
) -> None:
    async with connect(standin, config=billing_config()) as session:
        await send_audio(session, bytes(2 * 16000 // 2) + pcm_tone(440, 1.0))  # 0.5 s silence
        spoken = usage_of(await collect_turn(session))
        typed = usage_of(await text_turn(session, "ok"))

    assert details(spoken.prompt_tokens_details) == {
        "TEXT": text_tokens(SYSTEM), "AUDIO": round(AUDIO_RATE * 1.5)
    }  # fmt: skip
    assert details(typed.prompt_tokens_details) == {
        "TEXT": text_tokens(SYSTEM) + text_tokens("ok"),
        "AUDIO": round(AUDIO_RATE * (1.5 + REPLY_S)),
    }


@pytest.mark.asyncio
async def test_an_interrupted_turn_bills_the_audio_it_sent_before_the_cut(
    standin: StandIn,
) -> None:
    standin.behaviour.reply_audio_s = 2.0
    standin.behaviour.chunk_interval_s = 0.05
    async with connect(standin, config=billing_config()) as session:
        await session.send_realtime_input(text="a long story")
        opening = await next_message(session)
        await standin.interrupt()
        cut = [opening, *await collect_turn(session)]
        standin.behaviour.chunk_interval_s = 0.0
        after = usage_of(await text_turn(session, "short"))

    usage = usage_of(cut)
    spoken = sent_audio_tokens(cut)
    assert cut[-2].server_content.interrupted is True
    assert 0 < spoken < round(AUDIO_RATE * 2.0)  # cut short
    assert (usage.response_token_count, details(usage.response_tokens_details)) == (
        spoken, {"AUDIO": spoken}
    )  # fmt: skip
    assert details(after.prompt_tokens_details)["AUDIO"] == spoken  # what was said, no more


@pytest.mark.asyncio
async def test_the_fixed_knobs_still_give_the_old_numbers(standin: StandIn) -> None:
    fixed_usage(standin, 100, 50)
    async with connect(standin, config=billing_config()) as session:
        typed = await text_turn(session, "Hello there")
        await send_audio(session, pcm_tone(440, 0.5))
        await session.send_realtime_input(audio_stream_end=True)
        spoken = await collect_turn(session)
        standin.behaviour.response_tokens_per_turn = None  # the prompt alone stays fixed
        mixed = usage_of(await text_turn(session, "again"))

    assert standin.connections[0].usage[:2] == [
        {
            "promptTokenCount": 100,
            "responseTokenCount": 50,
            "totalTokenCount": 150,
            "promptTokensDetails": [{"modality": modality, "tokenCount": 100}],
            "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 50}],
        }
        for modality in ("TEXT", "AUDIO")
    ]
    assert usage_of(typed).total_token_count == usage_of(spoken).total_token_count == 150
    response = round(AUDIO_RATE * REPLY_S)
    assert (mixed.prompt_token_count, mixed.response_token_count) == (100, response)


@pytest.mark.asyncio
async def test_frame_arrivals_align_with_the_frames_kept(tmp_path: Path) -> None:
    small = len(frame().data) * 4  # room for a frame or two with their messages, not three
    async with StandIn(tls_dir=tmp_path / "tls", record_limit_bytes=small) as standin:
        before = time.time()
        async with connect(standin, config=billing_config()) as session:
            for _ in range(3):
                await session.send_realtime_input(video=frame())
            usage = usage_of(await text_turn(session, "seen?"))
        after = time.time()
        record = standin.connections[0].snapshot()

    assert len(record.frames) == len(record.frame_arrivals)
    assert 1 <= len(record.frames) < 3  # the last frame was not kept, nor when it came
    assert record.truncated is True
    assert before <= record.frame_arrivals[0] <= record.frame_arrivals[-1] <= after
    assert details(usage.prompt_tokens_details)["IMAGE"] == 3 * FRAME[None]  # all billed
