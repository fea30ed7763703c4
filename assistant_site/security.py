"""Security pieces the settings wire in: the Content-Security-Policy and the client address."""

import ipaddress

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

# What the pages load, and nothing more. Scripts, styles and AudioWorklet modules all come
# from /static/ (no inline code anywhere, tests/integration/test_production_settings.py
# checks the templates); frames are drawn on a canvas and encoded to blobs; the only
# connection besides same-origin HTTP is the share WebSocket (added per request). The
# Django admin of Django 5.2 has no inline scripts or styles and runs under the same policy.
BASE_POLICY: tuple[tuple[str, str], ...] = (
    ("default-src", "'self'"),
    ("script-src", "'self'"),
    ("style-src", "'self'"),
    ("img-src", "'self' data: blob:"),
    ("media-src", "'self' blob:"),
    ("worker-src", "'self' blob:"),
    ("object-src", "'none'"),
    ("base-uri", "'none'"),
    ("form-action", "'self'"),
    ("frame-ancestors", "'none'"),
)

HEADER = "Content-Security-Policy"


def content_security_policy(request: HttpRequest) -> str:
    """The policy for one response: ``BASE_POLICY`` plus the WebSocket URL of this host.

    ``'self'`` covers ws: and wss: only in browsers that implement CSP 3 fully, so the
    socket's origin is named explicitly: wss:// when the page came over HTTPS (directly or
    through a trusted proxy), ws:// otherwise. A host that is not allowed gets no socket.
    """
    connect = ["'self'"]
    try:
        host = request.get_host()
    except DisallowedHost:
        host = ""
    if host:
        connect.append(f"{'wss' if request.is_secure() else 'ws'}://{host}")
    directives = [*BASE_POLICY, ("connect-src", " ".join(connect))]
    return "; ".join(f"{name} {value}" for name, value in directives)


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Add the Content-Security-Policy header to every response that has none yet.

    Django's own debug error pages (404 and 500 with DEBUG on) style themselves inline;
    they go out without the policy so that they stay readable in development.
    """

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        """Set the header unless the response is a debug error page or already has one."""
        if settings.DEBUG and response.status_code in (404, 500):
            return response
        if HEADER not in response:
            response[HEADER] = content_security_policy(request)
        return response


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
