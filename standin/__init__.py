"""An offline stand-in for the Gemini Live API, reachable with the real google-genai SDK.

Used as the upstream in tests, as the offline demo model and, via
``python -m standin``, as a separate process.
"""

from standin.profiles import DEFAULT_MODEL, PROFILES, RETIRED, ModelProfile
from standin.records import Behaviour, Connection, ModelContext, PendingCall
from standin.server import StandIn
from standin.threaded import ThreadedStandIn
from standin.tls import TlsFiles, ensure_tls_files, write_tls_files

__all__ = [
    "DEFAULT_MODEL",
    "PROFILES",
    "RETIRED",
    "Behaviour",
    "Connection",
    "ModelContext",
    "ModelProfile",
    "PendingCall",
    "StandIn",
    "ThreadedStandIn",
    "TlsFiles",
    "ensure_tls_files",
    "write_tls_files",
]
