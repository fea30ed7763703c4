"""SDK server messages become relay events, every field of every message."""

from google.genai import types

from sessions_app.live import events


def test_one_message_with_many_fields_yields_every_event_in_order() -> None:
    message = types.LiveServerMessage(
        server_content=types.LiveServerContent(
            model_turn=types.Content(
                parts=[
                    types.Part(inline_data=types.Blob(data=b"\x01\x02", mime_type="audio/pcm")),
                    types.Part(text="thinking", thought=True),
                    types.Part(text="Hello"),
                ]
            ),
            input_transcription=types.Transcription(text="hi"),
            output_transcription=types.Transcription(text="Hello"),
            turn_complete=True,
        ),
        usage_metadata=types.UsageMetadata(
            prompt_token_count=10,
            response_token_count=5,
            total_token_count=15,
            prompt_tokens_details=[
                types.ModalityTokenCount(modality=types.MediaModality.AUDIO, token_count=7),
                types.ModalityTokenCount(modality=types.MediaModality.IMAGE, token_count=3),
            ],
        ),
        session_resumption_update=types.LiveServerSessionResumptionUpdate(
            new_handle="h1", resumable=True
        ),
        go_away=types.LiveServerGoAway(time_left="5s"),
    )
    assert events.events_from_message(message) == [
        events.InputTranscript("hi"),
        events.AudioOut(b"\x01\x02"),
        events.TextOut("Hello"),
        events.OutputTranscript("Hello"),
        events.TurnComplete(),
        events.Usage(10, 5, 15, {"prompt_AUDIO": 7, "prompt_IMAGE": 3}),
        events.ResumptionUpdate("h1", True),
        events.GoAway("5s"),
    ]


def test_interrupted_and_empty_messages() -> None:
    interrupted = types.LiveServerMessage(server_content=types.LiveServerContent(interrupted=True))
    assert events.events_from_message(interrupted) == [events.Interrupted()]
    assert events.events_from_message(types.LiveServerMessage()) == []
