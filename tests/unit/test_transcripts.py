"""Merging transcription fragments into lines."""

from sessions_app.transcripts import TurnBuffer


def test_fragments_merge_per_speaker_user_first() -> None:
    turns = TurnBuffer()
    turns.add_fragment(role="model", source="speech", text="Sure, ")
    turns.add_fragment(role="user", source="speech", text="Can you ")
    turns.add_fragment(role="model", source="speech", text="here it is.")
    turns.add_fragment(role="user", source="speech", text="help?")
    assert turns.pending
    lines = turns.complete_turn()
    assert [(x.sequence, x.role, x.source, x.text) for x in lines] == [
        (1, "user", "speech", "Can you help?"),
        (2, "model", "speech", "Sure, here it is."),
    ]
    assert not turns.pending
    assert turns.turn == 2


def test_typed_lines_are_numbered_at_once_and_empty_turns_skipped() -> None:
    turns = TurnBuffer()
    typed = turns.add_typed("hello")
    turns.add_fragment(role="model", source="text-reply", text="  ")
    assert turns.complete_turn() == []
    turns.add_fragment(role="model", source="text-reply", text="Hi!")
    (reply,) = turns.complete_turn()
    assert (typed.sequence, reply.sequence) == (1, 2)
    assert (reply.source, reply.text) == ("text-reply", "Hi!")
    assert turns.turn == 3
