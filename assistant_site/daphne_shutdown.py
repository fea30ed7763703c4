"""A fix for Daphne's graceful shutdown, applied when Daphne serves this site.

On SIGTERM Daphne's ``Server.kill_all_applications`` cancels every application instance
and waits for them, which is when live sessions store their transcript and are marked
"server shutdown". Daphne 4.2 indexes ``details["application_instance"]`` for every
connection, but its ``application_checker`` removes that key from connections whose
application already finished (a served HTTP request whose socket is still open, such as
a keep-alive connection from nginx). The KeyError then aborts the shutdown trigger, no
application is cancelled, and the process exits without ending its sessions.

The replacement below is the same method, skipping connections without an instance.
"""

import asyncio
import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)


def kill_all_applications(self: Any) -> Any:
    """Cancel every running application instance and make Twisted wait for them."""
    from twisted.internet import defer

    wait_for = []
    for details in list(self.connections.values()):
        application_instance = details.get("application_instance")
        if application_instance is not None and not application_instance.done():
            application_instance.cancel()
            wait_for.append(application_instance)
    logger.info("Cancelled %i application instances for shutdown", len(wait_for))
    wait_deferred = defer.Deferred.fromFuture(asyncio.gather(*wait_for))
    wait_deferred.addErrback(lambda failure: None)
    return wait_deferred


def install() -> None:
    """Replace the method if Daphne is the server running this process."""
    server = sys.modules.get("daphne.server")
    if server is not None:
        server.Server.kill_all_applications = kill_all_applications
