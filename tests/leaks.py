"""Watching everything the suite sees for the configured Gemini API key.

Every HTTP response of Django's test clients, every WebSocket message the test browsers
receive, every log record of the test process and the logs of every server process the
suite starts are scanned. When the run finishes, tests/conftest.py's
``pytest_sessionfinish`` fails it if the key appeared anywhere, and, after a run of the
whole suite, if the scan did not really cover the run (``FULL_RUN_MINIMUM``).
"""

import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field

# Recognisable, so a test can prove the key never reaches a page, a message or a log.
TEST_API_KEY = f"test-key-{uuid.uuid4().hex}"


@dataclass
class LeakScanner:
    """Counts what it scanned and keeps where ``secret`` was found."""

    secret: str
    checked: Counter[str] = field(default_factory=Counter)
    leaks: list[tuple[str, str]] = field(default_factory=list)

    def scan(self, channel: str, text: str | bytes) -> None:
        """Look for the secret in one response, message or log text."""
        if isinstance(text, bytes):
            text = text.decode("latin-1")
        self.checked[channel] += 1
        at = text.find(self.secret)
        if at >= 0:
            self.leaks.append((channel, text[max(0, at - 120) : at + 120]))


class ScanningHandler(logging.Handler):
    """A logging handler that scans every formatted record, tracebacks included."""

    def __init__(self, scanner: LeakScanner) -> None:
        super().__init__(level=logging.DEBUG)
        self.scanner = scanner
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Scan the record as any handler would write it."""
        self.scanner.scan("log", self.format(record))


SCANNER = LeakScanner(TEST_API_KEY)


# What a run of the whole suite scans at the least, by channel: fewer means the scan
# stopped seeing part of the run, and a clean result would prove nothing.
FULL_RUN_MINIMUM = {"http": 20, "ws": 100, "log": 100, "server-log": 2}


def findings(scanner: LeakScanner, *, full_run: bool) -> list[str]:
    """What is wrong with a run: each place the secret was found and, after a run of the
    whole suite, each channel scanned less than ``FULL_RUN_MINIMUM`` says."""
    problems = [
        f"the API key appeared in {channel}: {context.replace(scanner.secret, '<API key>')!r}"
        for channel, context in scanner.leaks
    ]
    if full_run:
        problems += [
            f"only {scanner.checked[channel]} {channel} texts were scanned; "
            f"a run of the whole suite scans at least {minimum}"
            for channel, minimum in FULL_RUN_MINIMUM.items()
            if scanner.checked[channel] < minimum
        ]
    return problems
