"""Watching everything the suite sees for the configured Gemini API key.

Every HTTP response of Django's test clients, every WebSocket message the test browsers
receive, every log record of the test process and the logs of every server process the
suite starts are scanned. The last test of the run asserts that the key never appeared
and that the scan really covered the run.
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
