"""A self-signed development TLS certificate for ``uploadsession serve --https``.

Like ``func start --useHttps``: the certificate and its key are generated once under
``.local/`` (``devcert.pem``, ``devcert-key.pem``), valid for ``localhost`` and ``127.0.0.1``
(subject alternative names), and reused while they are valid for at least another day.
Clients trust it by pointing at ``devcert.pem`` (``NODE_EXTRA_CA_CERTS`` for Node,
``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` for Python). Never use it outside development.
"""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from uploadsession.dev.tokens import write_private_key

__all__ = ["CERT_NAME", "KEY_NAME", "ensure_devcert", "server_context"]

CERT_NAME = "devcert.pem"
KEY_NAME = "devcert-key.pem"
_VALIDITY = timedelta(days=365)
_MIN_REMAINING = timedelta(days=1)


def _usable(cert_path: Path, key_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key_path.stat()
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc - datetime.now(UTC) > _MIN_REMAINING


def ensure_devcert(directory: Path) -> tuple[Path, Path]:
    """``(certificate, key)`` paths under ``directory``, generated when missing or expiring."""
    cert_path, key_path = directory / CERT_NAME, directory / KEY_NAME
    if _usable(cert_path, key_path):
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private_key(key_path, key, overwrite=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2+) serving ``cert_path`` with ``key_path``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context
