"""An offline stand-in for the Gemini Live API, reachable with the real google-genai SDK.

Used as the upstream in tests, as the offline demo model and, via
``python -m sessions_app.live.emulator``, as a separate process.
"""

from sessions_app.live.emulator.records import Behaviour, Connection, ModelContext
from sessions_app.live.emulator.server import StandIn
from sessions_app.live.emulator.threaded import ThreadedStandIn
from sessions_app.live.emulator.tls import TlsFiles, ensure_tls_files, write_tls_files

__all__ = [
    "Behaviour",
    "Connection",
    "ModelContext",
    "StandIn",
    "ThreadedStandIn",
    "TlsFiles",
    "ensure_tls_files",
    "write_tls_files",
]
