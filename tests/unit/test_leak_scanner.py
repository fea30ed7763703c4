"""The leak scanner the suite uses to prove the API key never leaves the server."""

import logging

from tests.leaks import LeakScanner, ScanningHandler


def test_scanner_finds_the_secret_in_text_bytes_and_log_records() -> None:
    scanner = LeakScanner("sekrit-123")
    scanner.scan("http", "<p>nothing here</p>")
    scanner.scan("ws", b'{"key":"sekrit-123"}')
    logger = logging.getLogger("tests.leak-scanner")
    handler = ScanningHandler(scanner)
    logger.addHandler(handler)
    try:
        logger.warning("upstream said %s", "key=sekrit-123")
        logger.warning("clean line")
    finally:
        logger.removeHandler(handler)
    assert scanner.checked == {"http": 1, "ws": 1, "log": 2}
    assert [channel for channel, _ in scanner.leaks] == ["ws", "log"]
    assert "sekrit-123" in scanner.leaks[1][1]
