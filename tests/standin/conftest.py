"""Fixtures of the stand-in's tests: no Django here, only the stand-in itself."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from standin import Behaviour, StandIn


@pytest_asyncio.fixture
async def standin(tmp_path: Path) -> AsyncIterator[StandIn]:
    """A stand-in with default behaviour on a free port, TLS files in tmp_path."""
    async with StandIn(behaviour=Behaviour(), tls_dir=tmp_path / "tls") as server:
        yield server
