"""Security pieces the settings wire in: the share WebSocket's CSP source and the client address."""

import ipaddress

from csp.constants import SELF
from csp.middleware import CSPMiddleware, PolicyParts
from csp.utils import build_policy
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase


def connect_sources(request: HttpRequest) -> list[str]:
    """The connect-src of one response: ``'self'`` and the share WebSocket of this host.

    ``'self'`` covers ws: and wss: only in browsers that implement CSP 3 fully, so the
    socket's origin is named explicitly: wss:// when the page came over HTTPS (directly or
    through a trusted proxy), ws:// otherwise. A host that is not allowed gets no socket.
    """
    try:
        host = request.get_host()
    except DisallowedHost:
        return [SELF]
    return [SELF, f"{'wss' if request.is_secure() else 'ws'}://{host}"] if host else [SELF]


def content_security_policy(request: HttpRequest) -> str:
    """The policy the middleware sends for ``request``: the settings' plus connect-src."""
    return build_policy(update={"connect-src": connect_sources(request)})


class WebSocketCSPMiddleware(CSPMiddleware):
    """django-csp's middleware, adding the per-request connect-src to the settings' policy.

    settings.CONTENT_SECURITY_POLICY leaves connect-src out: it is added here as an update,
    which django-csp writes after the configured directives, so it always ends the header.
    Like django-csp, Django's debug 404 and 500 pages (DEBUG on) go without a policy.
    """

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        """django-csp's parts of the policy, with this request's connect-src added."""
        parts = super().get_policy_parts(request, response, report_only)
        if not report_only:
            update = dict(parts.update or {})
            added = update.pop("connect-src", None) or []
            extra = [added] if isinstance(added, str) else list(added)
            parts.update = {**update, "connect-src": [*connect_sources(request), *extra]}
        return parts


def client_ip(request: HttpRequest) -> str:
    """The client's address, for login throttling (django-axes' AXES_CLIENT_IP_CALLABLE).

    With ``TRUSTED_PROXY_COUNT`` = 0 this is REMOTE_ADDR: any X-Forwarded-For is the
    client's own claim and ignored. Behind N trusted proxies that each append the address
    they received the request from, the client is the N-th X-Forwarded-For entry from the
    right; entries left of it are the client's claims and ignored too. A header with too
    few entries or an entry that is not an IP address falls back to REMOTE_ADDR.
    (Daphne's --proxy-headers is not used for this: it takes the left-most entry, which the
    client controls.)
    """
    remote = str(request.META.get("REMOTE_ADDR") or "")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if len(hops) < count:
        return remote
    try:
        return str(ipaddress.ip_address(hops[-count]))
    except ValueError:
        return remote
