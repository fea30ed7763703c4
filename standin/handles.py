"""The session resumption handles a stand-in issued, and whether a setup may resume one.

A handle belongs to a conversation: the connection that started it and every connection
that resumed from one of its handles. Like the real service, a setup naming a handle is
refused when the handle is unknown (1008), expired (1007: ``Behaviour.handle_ttl_s`` or
a deadline that ended its conversation), taken while a function call executed (1007,
not resumable), or, with ``Behaviour.refuse_overlapping_resumption``, issued by a
connection that is still open (1011).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from standin.protocol import (
    EXPIRED_HANDLE_REASON,
    INTERNAL_ERROR,
    INVALID_ARGUMENT,
    INVALID_HANDLE_REASON,
    NOT_RESUMABLE_REASON,
    POLICY_VIOLATION,
    STILL_ACTIVE_REASON,
    Refusal,
)
from standin.records import Behaviour, ModelContext

logger = logging.getLogger(__name__)

MAX_RESUMPTION_HANDLES = 1000


@dataclass
class IssuedHandle:
    """One handle sent in a sessionResumptionUpdate, and the context it resumes."""

    handle: str
    connection: int
    conversation: int
    issued_at: float
    context: ModelContext
    resumable: bool = True
    expired: bool = False


class HandleBook:
    """Every handle sent (the newest ``limit``), by handle."""

    def __init__(self, limit: int = MAX_RESUMPTION_HANDLES) -> None:
        self.issued: dict[str, IssuedHandle] = {}
        self.limit = limit

    def contexts(self) -> dict[str, ModelContext]:
        """Handle -> the context a setup naming it resumes from."""
        return {handle: issued.context for handle, issued in self.issued.items()}

    def issue(self, base: str, issued: IssuedHandle) -> str:
        """Keep ``issued`` under ``base``, or ``base.N`` if that was used; return the name."""
        name, suffix = base, 0
        while name in self.issued:
            suffix += 1
            name = f"{base}.{suffix}"
        issued.handle = name
        self.issued[name] = issued
        while len(self.issued) > self.limit:
            del self.issued[next(iter(self.issued))]
        return name

    def check(
        self, handle: str, now: float, behaviour: Behaviour, is_open: Callable[[int], bool]
    ) -> IssuedHandle:
        """The handle a setup may resume from; a Refusal saying why it may not."""
        issued = self.issued.get(handle)
        if issued is None or behaviour.refuse_resumption:
            raise Refusal(POLICY_VIOLATION, INVALID_HANDLE_REASON)
        ttl = behaviour.handle_ttl_s
        if issued.expired or (ttl is not None and now - issued.issued_at > ttl):
            raise Refusal(INVALID_ARGUMENT, EXPIRED_HANDLE_REASON)
        if not issued.resumable:
            raise Refusal(INVALID_ARGUMENT, NOT_RESUMABLE_REASON)
        if behaviour.refuse_overlapping_resumption and is_open(issued.connection):
            raise Refusal(INTERNAL_ERROR, STILL_ACTIVE_REASON)
        return issued

    def expire_conversation(self, conversation: int) -> int:
        """Expire every handle of ``conversation``; return how many."""
        count = 0
        for issued in self.issued.values():
            if issued.conversation == conversation and not issued.expired:
                issued.expired = True
                count += 1
        logger.info("Conversation #%s: %s resumption handles expired", conversation, count)
        return count
