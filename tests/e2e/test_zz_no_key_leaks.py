"""Runs last: the configured API key appeared in no response, message or log of the run."""

import pytest

from tests.leaks import SCANNER, TEST_API_KEY


def test_the_api_key_never_left_the_server() -> None:
    if sum(SCANNER.checked.values()) == 0:
        pytest.skip("nothing was scanned: this test checks the rest of the suite's run")
    # The key was really in use: the stand-in was configured with it in many tests.
    assert TEST_API_KEY.startswith("test-key-")
    # The scan covered every channel of a full run.
    assert SCANNER.checked["http"] >= 20, SCANNER.checked
    assert SCANNER.checked["ws"] >= 100, SCANNER.checked
    assert SCANNER.checked["log"] >= 100, SCANNER.checked
    assert SCANNER.checked["server-log"] >= 2, SCANNER.checked
    assert SCANNER.leaks == []
