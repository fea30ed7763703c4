"""Hostile server messages become sane relay events: each repair the fuzzer called for.

(tests/faults/test_hostile_upstream.py fuzzes a live session; these pin each fault it
found, on the conversion alone.)
"""

import warnings

from google.genai import types

from sessions_app.live import events, relay
from sessions_app.live.events import Dropped


def message(**fields: object) -> types.LiveServerMessage:
    """A server message with these (snake_case) fields."""
    return types.LiveServerMessage.model_validate(fields)


def content(**fields: object) -> types.LiveServerMessage:
    """A serverContent message with these (snake_case) fields."""
    return message(server_content=fields)


def test_token_counts_out_of_range_are_held_to_zero_and_the_maximum_and_reported() -> None:
    usage = types.UsageMetadata(
        prompt_token_count=-5,
        response_token_count=10**30,
        total_token_count=7,
        thoughts_token_count=-1,
        prompt_tokens_details=[
            types.ModalityTokenCount(modality=types.MediaModality.AUDIO, token_count=-3),
            types.ModalityTokenCount(modality=types.MediaModality.TEXT, token_count=2**40),
        ],
    )
    result = events.events_from_message(types.LiveServerMessage(usage_metadata=usage))
    assert result[-1] == events.Usage(
        prompt_tokens=0,
        response_tokens=events.MAX_TOKEN_COUNT,
        total_tokens=7,
        details={"prompt_TEXT": events.MAX_TOKEN_COUNT},  # a count of 0 is no detail
        thoughts_tokens=0,
    )
    assert result[:-1] == [Dropped("token count out of range")] * 5


def test_a_modality_the_sdk_does_not_know_counts_as_other() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK warns about the unknown enum value
        usage = message(
            usage_metadata={
                "response_tokens_details": [
                    {"modality": "HOLOGRAM", "token_count": 4},
                    {"modality": "\x00" * 500, "token_count": 5},
                    {"modality": "audio", "token_count": 6},
                ]
            }
        )
    (event,) = events.events_from_message(usage)
    assert isinstance(event, events.Usage)
    assert event.response_by_modality == {"OTHER": 9, "AUDIO": 6}


def test_audio_of_an_odd_length_is_dropped_and_reported() -> None:
    def audio(data: bytes) -> types.LiveServerMessage:
        part = {"inline_data": {"data": data, "mime_type": "audio/pcm;rate=24000"}}
        return content(model_turn={"parts": [part]})

    assert events.events_from_message(audio(b"\x01\x02\x03")) == [Dropped("audio of an odd length")]
    assert events.events_from_message(audio(b"\x01\x02")) == [events.AudioOut(b"\x01\x02")]


def test_text_is_cleared_of_what_no_database_stores_and_cut() -> None:
    dirty = content(output_transcription={"text": "a\x00b\ud800c\x07\td\n"})
    assert events.events_from_message(dirty) == [
        Dropped("unstorable characters in text"),
        events.OutputTranscript("abc\td\n"),
    ]
    huge = content(input_transcription={"text": "x" * 1_000_000})
    assert events.events_from_message(huge) == [
        Dropped(f"text over {events.MAX_TEXT_CHARS} characters"),
        events.InputTranscript("x" * events.MAX_TEXT_CHARS),
    ]
    nothing_left = content(model_turn={"parts": [{"text": "\x00\x01"}]})
    assert events.events_from_message(nothing_left) == [Dropped("unstorable characters in text")]


def test_a_turn_complete_reason_that_is_no_enum_name_becomes_unknown() -> None:
    def reason(value: str) -> list[events.LiveEvent]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sent = content(turn_complete=True, turn_complete_reason=value)
        return events.events_from_message(sent)

    assert reason("A_REASON_FROM_NEXT_YEAR") == [events.TurnComplete("A_REASON_FROM_NEXT_YEAR")]
    assert reason("x" * 5000) == [events.TurnComplete(events.UNKNOWN_REASON)]
    assert reason("not a reason") == [events.TurnComplete(events.UNKNOWN_REASON)]
    assert reason("TURN_COMPLETE_REASON_UNSPECIFIED") == [events.TurnComplete()]


def test_a_function_call_without_an_id_is_dropped_and_the_others_kept() -> None:
    calls = message(
        tool_call={
            "function_calls": [
                {"name": "save_note", "args": {"title": "t"}},
                {"id": "", "name": "save_note"},
                {"id": "call-9", "name": "save_note", "args": {"title": "t"}},
            ]
        }
    )
    assert events.events_from_message(calls) == [
        Dropped("function call without an id"),
        Dropped("function call without an id"),
        events.ToolCall((events.FunctionCall("call-9", "save_note", {"title": "t"}),)),
    ]
    only_without = message(tool_call={"function_calls": [{"name": "save_note"}]})
    assert events.events_from_message(only_without) == [Dropped("function call without an id")]


def test_a_go_away_time_left_is_cut_and_held_to_a_connection_lifetime() -> None:
    (event,) = events.events_from_message(message(go_away={"time_left": "9" * 400 + "s"}))
    assert isinstance(event, events.GoAway)
    assert event.time_left == "9" * (events.MAX_TIME_LEFT_CHARS - 1) + "9"
    assert relay._seconds("9" * 400 + "s") == relay.MAX_TIME_LEFT_S  # not inf, not 1e400
    assert relay._seconds("2.5s") == 2.5
    assert relay._seconds("soon") == relay.DEFAULT_TIME_LEFT_S
