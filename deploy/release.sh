#!/bin/sh
# One-shot release steps before the workers start (the compose service "migrate"):
# schema migrations, static files into DJANGO_STATIC_ROOT (served by nginx), and sessions
# left "active" by workers that were killed marked as interrupted.
set -eu
python manage.py migrate --noinput
python manage.py collectstatic --noinput
python manage.py sweep_sessions
