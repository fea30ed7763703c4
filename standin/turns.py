"""The model turns of the stand-in: what each one sends, and the queue they wait in.

A normal reply streams audio chunks (24 kHz PCM16, a tone) interleaved with its output
transcription, then ``generationComplete`` and a final ``turnComplete`` with
usageMetadata. On models with ``interaction_status`` (3.8) the reply comes in two parts:
the first half, a turnComplete with ``interactionStatus: IN_PROGRESS`` (no usage), the
rest, and the final turnComplete says ``IDLE``. Late input transcription fragments go
after the reply's first chunks; scripted faults (an unknown message kind, a malformed
frame) in the middle.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from standin import media
from standin.billing import Prompt, audio_tokens
from standin.profiles import ModelProfile
from standin.protocol import OUTPUT_MIME, OUTPUT_RATE, Outgoing, content, fragments, words
from standin.records import Behaviour

WORDS_PER_TEXT_PART = 3
MALFORMED_FRAME = '{"serverContent": '
IN_PROGRESS, IDLE = "IN_PROGRESS", "IDLE"
PROHIBITED_INPUT = "PROHIBITED_INPUT_CONTENT"


@dataclass(eq=False)
class Turn:
    """One model reply waiting in, or playing from, a connection's turn queue.

    ``late``: input transcription messages still to send once the reply has started.
    ``tool_call`` (``{name, args}``): the turn calls this function first; a ``blocking``
    call ends the turn there, otherwise ``reply`` follows. ``tool_use``: the turn answers
    a function response. ``refused``: a refused input, answered with no content.
    ``prompt``: the context billed, taken when the turn starts to run; ``audio_s`` the
    seconds of reply audio actually sent so far (what the response bills).
    """

    reply: str
    input_modality: str
    prelude: list[Outgoing] = field(default_factory=list)
    late: list[dict[str, Any]] = field(default_factory=list)
    tool_call: dict[str, Any] | None = None
    blocking: bool = True
    tool_use: bool = False
    refused: bool = False
    cancelled: bool = False
    finished: bool = False
    sent: int = 0
    prompt: Prompt | None = None
    audio_s: Fraction = Fraction(0)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def delivered(self, message: Outgoing) -> None:
        """``message`` was sent: no longer a late fragment to send; its audio was spoken."""
        self.late = [item for item in self.late if item is not message]
        self.audio_s += sent_audio_s(message)


def sent_audio_s(message: Outgoing) -> Fraction:
    """The exact seconds of model audio (PCM16 inlineData) a server message carries."""
    body = message.get("serverContent") if isinstance(message, dict) else None
    turn = body.get("modelTurn") if isinstance(body, dict) else None
    parts = turn.get("parts") if isinstance(turn, dict) else None
    seconds = Fraction(0)
    for part in parts if isinstance(parts, list) else []:
        blob = part.get("inlineData") if isinstance(part, dict) else None
        if isinstance(blob, dict) and str(blob.get("mimeType")).startswith("audio/"):
            size = len(str(blob.get("data", "")).rstrip("=")) * 3 // 4  # base64: 4 chars, 3 bytes
            seconds += Fraction(size // 2, media.sample_rate(str(blob["mimeType"])))
    return seconds


class TurnQueue:
    """Turns waiting to play, first in first out; a turn may also jump the queue."""

    def __init__(self) -> None:
        self._items: deque[Turn] = deque()
        self._ready = asyncio.Event()

    def put(self, turn: Turn, *, first: bool = False) -> None:
        """Queue ``turn`` (at the front with ``first``)."""
        if first:
            self._items.appendleft(turn)
        else:
            self._items.append(turn)
        self._ready.set()

    async def get(self) -> Turn:
        """The next turn, once there is one."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


def reply_steps(
    turn: Turn, behaviour: Behaviour, profile: ModelProfile, transcribe_output: bool
) -> list[list[Outgoing]]:
    """The messages of a reply up to generationComplete, in steps sent without a pause."""
    pcm = media.tone_pcm16(behaviour.reply_tone_hz, behaviour.reply_audio_s, OUTPUT_RATE)
    size = max(2, 2 * round(behaviour.audio_chunk_s * OUTPUT_RATE))
    chunks = [pcm[start : start + size] for start in range(0, len(pcm), size)]
    by_words = math.ceil(len(words(turn.reply)) / WORDS_PER_TEXT_PART)
    pieces = fragments(turn.reply, len(chunks) or by_words) if transcribe_output else []
    steps: list[list[Outgoing]] = []
    for index in range(max(len(chunks), len(pieces))):
        step: list[Outgoing] = []
        if index < len(chunks):
            data = {"mimeType": OUTPUT_MIME, "data": media.b64encode(chunks[index])}
            step.append(content(modelTurn={"parts": [{"inlineData": data}]}))
        if index < len(pieces):
            step.append(content(outputTranscription={"text": pieces[index]}))
        steps.append(step)
    for index, message in enumerate(turn.late):  # one after each step, from the first on
        if steps:
            steps[min(index, len(steps) - 1)].append(message)
        else:
            steps.append([message])
    middle: list[Outgoing] = []
    if profile.interaction_status and behaviour.in_progress_split and steps:
        middle.append(content(turnComplete=True, interactionStatus=IN_PROGRESS))
    if behaviour.unknown_kind_mid_reply:
        middle.append({behaviour.unknown_kind_mid_reply: {}})
    if behaviour.malformed_mid_reply:
        middle.append(MALFORMED_FRAME)
    if middle:
        half = max(1, len(steps) // 2) if steps else 0
        steps.insert(half, middle)
    steps.append([content(generationComplete=True)])
    return steps


def turn_complete(
    profile: ModelProfile | None, usage: dict[str, Any] | None, reason: str | None = None
) -> dict[str, Any]:
    """The final turnComplete of a turn (IDLE on models that report interactionStatus)."""
    fields: dict[str, Any] = {"turnComplete": True}
    if reason is not None:
        fields["turnCompleteReason"] = reason
    if profile is not None and profile.interaction_status:
        fields["interactionStatus"] = IDLE
    message: dict[str, Any] = {"serverContent": fields}
    if usage is not None:
        message["usageMetadata"] = usage
    return message


def usage(turn: Turn, behaviour: Behaviour, profile: ModelProfile | None) -> dict[str, Any]:
    """The usageMetadata of one turn; the total includes thoughts and tool use.

    The prompt bills ``turn.prompt`` (the context before the turn), the response the
    reply audio sent (none for a refused input), unless ``Behaviour`` fixes either.
    Thinking models think on every turn that answers (whatever the thinking level); a
    turn answering a function response pays for the response as tool-use prompt.
    """
    prompt, details = _prompt(turn, behaviour)
    fixed = behaviour.response_tokens_per_turn
    response = audio_tokens(turn.audio_s) if fixed is None else fixed
    response = 0 if turn.refused else response
    thinking = profile is not None and profile.thinking and not turn.refused
    thoughts = behaviour.thoughts_tokens_per_turn if thinking else 0
    tool_use = behaviour.tool_use_tokens_per_turn if turn.tool_use else 0
    result: dict[str, Any] = {
        "promptTokenCount": prompt,
        "responseTokenCount": response,
        "totalTokenCount": prompt + response + thoughts + tool_use,
    }
    if details:
        result["promptTokensDetails"] = details
    if response:
        result["responseTokensDetails"] = [{"modality": "AUDIO", "tokenCount": response}]
    if thoughts:
        result["thoughtsTokenCount"] = thoughts
    if tool_use:
        result["toolUsePromptTokenCount"] = tool_use
        result["toolUsePromptTokensDetails"] = [{"modality": "TEXT", "tokenCount": tool_use}]
    return result


def _prompt(turn: Turn, behaviour: Behaviour) -> tuple[int, list[dict[str, Any]]]:
    """promptTokenCount and promptTokensDetails: billed, or the fixed count of ``behaviour``."""
    fixed = behaviour.prompt_tokens_per_turn
    if fixed is not None:
        return fixed, [{"modality": turn.input_modality, "tokenCount": fixed}]
    billed = turn.prompt if turn.prompt is not None else Prompt()
    return billed.count, billed.details()
