#!/bin/sh
# One-shot release steps before the workers start (the compose service "migrate"):
# schema migrations, static files into DJANGO_STATIC_ROOT (served by nginx), and sessions
# left "active" by workers that were killed marked as interrupted. First the system checks
# with --deploy: bad configuration (an unreadable GEMINI_CA_BUNDLE, an unreachable
# PostgreSQL or Redis, a malformed GEMINI_PRICES) stops the release here, with the check's
# id, message and hint, and the workers, which wait for this step, never start.
set -eu
python manage.py check --deploy
python manage.py migrate --noinput
python manage.py collectstatic --noinput
python manage.py sweep_sessions
