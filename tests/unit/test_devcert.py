"""``uploadsession serve --https``: the development certificate and TLS in the dev host."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.unit.test_devhost import single_route_app
from uploadsession.dev.cert import ensure_devcert, server_context
from uploadsession.dev.host import DevHost


def test_certificate_is_made_once_and_reused(tmp_path: Path) -> None:
    cert_path, key_path = ensure_devcert(tmp_path)
    first = cert_path.read_bytes()
    assert key_path.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(first)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    assert ensure_devcert(tmp_path) == (cert_path, key_path)
    assert cert_path.read_bytes() == first  # reused, not regenerated


def test_a_broken_certificate_is_replaced(tmp_path: Path) -> None:
    cert_path, _ = ensure_devcert(tmp_path)
    cert_path.write_text("not a certificate")
    ensure_devcert(tmp_path)
    x509.load_pem_x509_certificate(cert_path.read_bytes())


@pytest.mark.parametrize("authority", ["127.0.0.1", "localhost"])
def test_devhost_serves_tls_verified_against_the_dev_certificate(
    tmp_path: Path, authority: str
) -> None:
    cert_path, key_path = ensure_devcert(tmp_path)
    host = DevHost(
        single_route_app("docs/{name}"),
        port=0,
        log=None,
        ssl_context=server_context(cert_path, key_path),
    )
    with host:
        assert host.url.startswith("https://127.0.0.1:")
        url = host.url.replace("127.0.0.1", authority) + "/api/docs/readme"
        verify = ssl.create_default_context(cafile=str(cert_path))
        with httpx.Client(verify=verify, timeout=5) as client:
            for _ in range(2):  # keep-alive over TLS
                response = client.get(url)
                assert response.status_code == 200
                assert response.json() == {"name": "readme"}
        with pytest.raises(httpx.ConnectError):  # not trusted without the dev certificate
            httpx.get(url, timeout=5)
