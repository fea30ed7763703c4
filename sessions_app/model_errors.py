"""What the user and the operator are told when the model service refuses or fails.

The Live API refuses what it cannot serve by closing the WebSocket: 1008 for a model it
does not offer (retired or unknown ids), 1007 for a setup it will not take (an invalid
argument), 1011 for its own internal errors. One table, here, turns a close code into
the browser's error code, a plain sentence for the user and a log line for the operator
that names the setting to look at. The service's own code and reason are kept for both.
"""

from dataclasses import dataclass

from django.utils.translation import gettext_noop

from sessions_app.protocol import ErrorCode

AT_SETUP = "at setup"
MID_SESSION = "during the session"

# For the user; marked here, translated when sent (sessions_app.outbound.encode).
UNAVAILABLE_MESSAGE = gettext_noop(
    "The assistant's model is not available. Tell an administrator: the"
    " GEMINI_MODEL setting names a model the service does not offer."
)
REFUSED_MESSAGE = gettext_noop(
    "The model service refused this session's settings. Tell an administrator."
)
MODEL_ERROR_MESSAGE = gettext_noop(
    "The model service had an internal error. Try again in a minute."
)
UNREACHABLE_MESSAGE = gettext_noop("The model could not be reached. Try again in a minute.")
LOST_MESSAGE = gettext_noop(
    "The connection to the model was lost and could not be restored. Start again."
)


@dataclass(frozen=True)
class ModelFailure:
    """One refusal or failure of the model service, told to the user and the operator."""

    error_code: ErrorCode
    message: str  # for the user: what happened and what to do
    operator: str  # for the log: what to check
    upstream_code: int | None = None
    upstream_reason: str = ""

    def details(self) -> dict[str, object]:
        """The fields the browser's ``error`` message carries besides code and message."""
        if self.upstream_code is None:
            return {}
        return {"upstream_code": self.upstream_code, "upstream_reason": self.upstream_reason}


def model_failure(code: int | None, reason: str, *, model: str, during: str) -> ModelFailure:
    """The failure a close ``code`` with ``reason`` stands for; ``during`` says when it came."""
    reason = reason.strip()
    said = f"{code} {reason}".strip() if code is not None else "no close code"
    if code == 1008 and "not found" in reason.lower():
        return ModelFailure(
            ErrorCode.MODEL_UNAVAILABLE,
            UNAVAILABLE_MESSAGE,
            f"Gemini Live refused the model {model!r} {during} ({said}). Set GEMINI_MODEL"
            " to a current model; `manage.py check` lists the known ones.",
            code,
            reason,
        )
    if code in (1007, 1008):
        return ModelFailure(
            ErrorCode.MODEL_REFUSED,
            REFUSED_MESSAGE,
            f"Gemini Live refused the session for model {model!r} {during} ({said}). Check"
            " GEMINI_MODEL and what sessions_app/live/models.py sends that model.",
            code,
            reason,
        )
    if code == 1011:
        return ModelFailure(
            ErrorCode.MODEL_ERROR,
            MODEL_ERROR_MESSAGE,
            f"Gemini Live failed with an internal error {during} ({said}).",
            code,
            reason,
        )
    if during == AT_SETUP:
        return ModelFailure(
            ErrorCode.UPSTREAM_UNAVAILABLE,
            UNREACHABLE_MESSAGE,
            f"Gemini Live could not be reached {during} ({said}).",
            code,
            reason,
        )
    return ModelFailure(
        ErrorCode.UPSTREAM_ERROR,
        LOST_MESSAGE,
        f"Gemini Live connection lost {during} ({said}).",
        code,
        reason,
    )
