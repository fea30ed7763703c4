#!/bin/sh
# Container health check of one web worker: GET /healthz on its own Daphne (database and
# channel layer). The slim image has no curl, so Python's urllib asks. The Host header is
# the first of DJANGO_ALLOWED_HOSTS (Django refuses any other); exit 0 only on HTTP 200.
# Usage: healthcheck.sh [PORT]   (default 8000, the port the image's Daphne listens on)
set -eu
host="${DJANGO_ALLOWED_HOSTS:-localhost}"
host="${host%%,*}"
host="${host#.}"
case "$host" in "" | "*") host=localhost ;; esac
exec python - "$host" "${1:-8000}" <<'PY'
import sys
import urllib.error
import urllib.request

host, port = sys.argv[1], sys.argv[2]
request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", headers={"Host": host})
try:
    with urllib.request.urlopen(request, timeout=4) as response:
        print(response.read().decode())
except urllib.error.HTTPError as error:
    print(f"HTTP {error.code}: {error.read().decode()[:200]}")
    sys.exit(1)
except OSError as error:
    print(f"unreachable: {error}")
    sys.exit(1)
PY
