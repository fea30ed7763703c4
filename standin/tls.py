"""Throwaway TLS material for the stand-in: a private CA and a server certificate."""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import trustme

logger = logging.getLogger(__name__)

DEFAULT_HOSTS = ("127.0.0.1", "localhost", "::1")
CA_FILE = "ca.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server-key.pem"
NAMES_FILE = "server-names.txt"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files written by :func:`write_tls_files`."""

    ca_path: Path
    cert_path: Path
    key_path: Path

    @classmethod
    def in_directory(cls, directory: str | Path) -> TlsFiles:
        """The file names used in ``directory``."""
        folder = Path(directory)
        return cls(folder / CA_FILE, folder / CERT_FILE, folder / KEY_FILE)

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client-side context that trusts only the stand-in's CA."""
        return ssl.create_default_context(cafile=str(self.ca_path))


def certificate_names(hosts: Iterable[str] = ()) -> list[str]:
    """The names a certificate covers: the defaults, then ``hosts``, without repeats."""
    return list(dict.fromkeys([*DEFAULT_HOSTS, *(host for host in hosts if host)]))


def ensure_tls_files(directory: str | Path, hosts: Iterable[str] = ()) -> TlsFiles:
    """Reuse the CA and certificate in ``directory`` if they cover ``hosts``, else create them.

    Reuse keeps one CA for every stand-in sharing a directory, so clients that cached
    an SSL context for it keep working.
    """
    files = TlsFiles.in_directory(directory)
    names = certificate_names(hosts)
    try:
        if (Path(directory) / NAMES_FILE).read_text().split() == names:
            files.server_context()
            files.client_context()
            return files
    except (OSError, ssl.SSLError) as exc:
        logger.debug("No reusable TLS files in %s: %s", directory, exc)
    return write_tls_files(directory, hosts)


def write_tls_files(directory: str | Path, hosts: Iterable[str] = ()) -> TlsFiles:
    """Create a fresh CA and a server certificate for ``hosts`` in ``directory``.

    The certificate always covers 127.0.0.1, localhost and ::1. Files are replaced
    atomically; the private key is readable by its owner only.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    names = certificate_names(hosts)
    ca = trustme.CA(organization_name="Gemini Live stand-in")
    cert = ca.issue_cert(*names)
    files = TlsFiles.in_directory(folder)
    _write(files.key_path, cert.private_key_pem.bytes(), mode=0o600)
    _write(files.cert_path, b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    _write(files.ca_path, ca.cert_pem.bytes())
    _write(folder / NAMES_FILE, "\n".join(names).encode() + b"\n")
    logger.info("Wrote a new stand-in CA to %s", files.ca_path)
    return files


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
