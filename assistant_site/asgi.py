"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant_site.settings")

# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from assistant_site import daphne_shutdown  # noqa: E402
from assistant_site.metrics import MetricsEndpoint  # noqa: E402
from sessions_app.routing import websocket_urlpatterns  # noqa: E402

daphne_shutdown.install()

# In development Daphne serves /static/ itself; in production nginx does.
django_http = ASGIStaticFilesHandler(django_asgi_app) if settings.SERVE_STATIC else django_asgi_app
http_app = MetricsEndpoint(django_http)  # /metrics, for Prometheus (METRICS_TOKEN)

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

# Everything loaded by now (Django, the SDK, pydantic's schemas) lives as long as the
# process: keep it out of the collector's full passes. Without this a gen-2 collection
# stalled every session on the worker for 75-105 ms at 100 sessions (docs/benchmarks.md).
gc.freeze()
# And collect ten times less often than Python's default (700, 10, 10): in a one-minute
# run of 150 sessions the default collected the young generation about 230 times, each
# pass a pause for every session on the worker (docs/benchmarks.md, "Profiling record").
gc.set_threshold(7000, 10, 10)
