"""A throwaway self-signed certificate for SIP over TLS on loopback.

Peers are started without server-certificate verification (PJSIP ``verify_server`` false,
baresip 1.0 does not verify, SIPp only verifies with a CA file); pass ``cert.cert_file`` as the CA
where a peer should verify, since the certificate is its own CA.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TlsFiles:
    cert_file: Path
    key_file: Path
    #: Certificate and key in one PEM file (baresip's ``sip_certificate`` wants both together).
    combined_file: Path


def make_self_signed(directory: Path, common_name: str = "localhost") -> TlsFiles:
    """Write ``cert.pem``, ``key.pem`` and ``combined.pem`` for localhost/127.0.0.1/::1 to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
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
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    files = TlsFiles(directory / "cert.pem", directory / "key.pem", directory / "combined.pem")
    files.cert_file.write_bytes(cert_pem)
    files.key_file.write_bytes(key_pem)
    files.combined_file.write_bytes(cert_pem + key_pem)
    return files
