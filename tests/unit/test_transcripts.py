"""Merging transcription fragments into lines."""

from sessions_app.session.transcripts import CUT_MARK, MAX_LINE_CHARS, TurnBuffer


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


def test_a_line_typed_while_the_model_answers_comes_after_the_answer() -> None:
    turns = TurnBuffer()
    assert turns.add_typed("first question") is not None
    turns.add_fragment(role="model", source="speech", text="The answer ")
    assert turns.add_typed("second question") is None  # held: the answer began first
    turns.add_fragment(role="model", source="speech", text="goes on.")
    lines = turns.complete_turn()
    assert [(x.sequence, x.role, x.source, x.text) for x in lines] == [
        (2, "model", "speech", "The answer goes on."),
        (3, "user", "typed", "second question"),
    ]


def test_late_user_speech_still_precedes_the_reply_it_led_to() -> None:
    turns = TurnBuffer()
    turns.add_fragment(role="model", source="speech", text="Yes, ")
    turns.add_typed("by the way")
    turns.add_fragment(role="user", source="speech", text="Is it on?")
    turns.add_fragment(role="model", source="speech", text="it is.")
    lines = turns.complete_turn()
    assert [(x.role, x.source, x.text) for x in lines] == [
        ("user", "speech", "Is it on?"),
        ("model", "speech", "Yes, it is."),
        ("user", "typed", "by the way"),
    ]
    assert [x.sequence for x in lines] == [1, 2, 3]


def test_a_line_stops_growing_at_the_cap_and_says_it_was_cut() -> None:
    turns = TurnBuffer()
    kept = [turns.add_fragment(role="model", source="speech", text="z" * 7000) for _ in range(4)]
    assert [len(k) for k in kept] == [7000, 7000, MAX_LINE_CHARS - 14000 + len(CUT_MARK), 0]
    assert kept[2].endswith(CUT_MARK)
    assert turns.add_fragment(role="user", source="speech", text="still heard") == "still heard"
    user, model = turns.complete_turn()
    assert model.text == "z" * MAX_LINE_CHARS + CUT_MARK
    assert user.text == "still heard"
