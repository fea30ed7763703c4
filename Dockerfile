# The site's image: Daphne serving HTTP and WebSocket (docker-compose.yml runs it as web1,
# web2 and the one-shot "migrate"). nginx, PostgreSQL and Redis run in their own images.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_STATIC_ROOT=/srv/static

# An unprivileged user runs everything; it owns nothing but the static files directory
# (the compose volume "static" is initialised from it, so collectstatic may write there).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app \
    && mkdir -p /srv/static \
    && chown app:app /srv/static

WORKDIR /app

# Dependencies first, pinned by constraints.txt, so that code changes reuse this layer.
# The project itself installs no Python packages ([tool.setuptools] packages = []): the
# code runs from /app.
COPY pyproject.toml constraints.txt README.md ./
RUN pip install -c constraints.txt .

COPY manage.py ./
COPY assistant_site ./assistant_site
COPY sessions_app ./sessions_app
COPY templates ./templates
COPY static ./static
COPY deploy/release.sh deploy/healthcheck.sh ./deploy/

USER app

EXPOSE 8000

# Exec form: Daphne is PID 1 and receives SIGTERM itself, so live sessions are ended as
# "server shutdown" with their transcripts stored before the container stops.
CMD ["python", "-m", "assistant_site.serve", "-b", "0.0.0.0", "-p", "8000", "assistant_site.asgi:application"]
