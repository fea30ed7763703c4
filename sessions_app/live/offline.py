"""The offline demo model: a process-wide Gemini Live stand-in used when no key is set.

The relay reaches it exactly as it reaches Google: the real SDK over TLS. Only the
endpoint differs, so the demo exercises the production code path.
"""

import atexit
import logging
import tempfile
import threading

from standin import ThreadedStandIn

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_standin: ThreadedStandIn | None = None


def offline_standin() -> ThreadedStandIn:
    """Start the stand-in on first use and return it."""
    global _standin
    with _lock:
        if _standin is None:
            tls_dir = tempfile.mkdtemp(prefix="standin-tls-")
            standin = ThreadedStandIn(tls_dir=tls_dir)
            standin.start()
            atexit.register(standin.stop)
            logger.info("Offline demo model (Gemini Live stand-in) at %s", standin.base_url)
            _standin = standin
        return _standin
