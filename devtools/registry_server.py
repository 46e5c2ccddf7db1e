"""A real OCI registry on 127.0.0.1 (Debian's ``docker-registry``), for the tests and the benchmarks.

Plain functions, no pytest: ``tests/fixtures/registry.py`` wraps them in fixtures, and
``benchmarks/startup.py`` / ``transfer.py`` call them directly, so neither imports the other's code.
:func:`start_registry` starts one server (open, htpasswd basic auth, TLS, or a token server's
bearer tokens) with its config, storage and log under a directory; :func:`ensure_tools` installs
the Debian packages behind the commands when one is missing.
"""

from __future__ import annotations

import datetime as _dt
import http.client
import ipaddress
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from modelhaul.registry_options import RegistryOptions


class TokenIssuer(Protocol):
    """What the registry's ``auth: token:`` block needs of a token server (the tests' ``TokenServer``)."""

    username: str
    password: str
    url: str
    service: str
    issuer: str
    cert_file: str


TOOLS = {"docker-registry": "docker-registry", "skopeo": "skopeo", "htpasswd": "apache2-utils"}


# -- tools ---------------------------------------------------------------------------------------


def ensure_tools(*names: str) -> None:
    """Install the Debian packages behind ``names`` (default: all of TOOLS) when a command is missing.

    ``apt-get update`` runs only when the first install fails, so a machine with a fresh package
    list installs in one step and an up-to-date one does nothing.
    """
    missing = sorted({TOOLS[n] for n in (names or tuple(TOOLS)) if shutil.which(n) is None})
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"could not install {' '.join(missing)}: {r.stderr.strip()[-500:]}")


# -- the server ----------------------------------------------------------------------------------


@dataclass
class RegistryServer:
    """A running ``docker-registry``; stop it with :meth:`stop` (fixtures do)."""

    host: str
    scheme: str
    root: Path
    proc: subprocess.Popen | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def options(self) -> RegistryOptions:
        return RegistryOptions(
            plain_http=self.scheme == "http",
            username=self.username,
            password=self.password,
            ca_file=self.ca_file,
        )

    def ref(self, repository: str, tag: str = "latest") -> str:
        return f"{self.host}/{repository}:{tag}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry(root: Path, *, auth: bool = False, tls: bool = False, token: TokenIssuer | None = None,
                   timeout: float = 30.0) -> RegistryServer:
    """Start ``docker-registry serve`` with its config, storage and log under ``root``.

    ``token`` makes the registry delegate auth to that token server (bearer tokens).
    """
    ensure_tools("docker-registry", *(("htpasswd",) if auth else ()))
    root = Path(root)
    (root / "storage").mkdir(parents=True, exist_ok=True)
    username = password = ca_file = None
    extra = ""
    if auth:
        username, password = "modelhaul", "pw-" + secrets.token_hex(8)
        out = subprocess.run(["htpasswd", "-Bbn", username, password], check=True, capture_output=True,
                             text=True).stdout
        (root / "htpasswd").write_text(out)
        extra += f"auth:\n  htpasswd:\n    realm: modelhaul-test\n    path: {root / 'htpasswd'}\n"
    if token is not None:
        username, password = token.username, token.password
        extra += (f"auth:\n  token:\n    realm: {token.url}/token\n    service: {token.service}\n"
                  f"    issuer: {token.issuer}\n    rootcertbundle: {token.cert_file}\n")
    tls_block = ""
    if tls:
        ca_file, cert, key = make_tls_files(root / "tls")
        tls_block = f"  tls:\n    certificate: {cert}\n    key: {key}\n"
    last_err = ""
    for _attempt in range(5):  # another process may take the port between probe and bind
        port = free_port()
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
            "  delete:\n    enabled: true\n"
            "  cache:\n    blobdescriptor: inmemory\n"
            f"http:\n  addr: 127.0.0.1:{port}\n  secret: {secrets.token_hex(16)}\n{tls_block}"
            + extra
        )
        log = open(root / "registry.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
        proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL)
        log.close()
        server = RegistryServer(host=f"127.0.0.1:{port}", scheme="https" if tls else "http", root=root,
                                proc=proc, username=username, password=password, ca_file=ca_file)
        if _wait_ready(server, timeout):
            return server
        server.stop()
        last_err = (root / "registry.log").read_text(errors="replace")[-800:]
    raise RuntimeError(f"docker-registry did not start: {last_err}")


def _wait_ready(server: RegistryServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    ctx = None
    if server.scheme == "https":
        ctx = ssl.create_default_context(cafile=server.ca_file)
    while time.monotonic() < deadline:
        if server.proc is not None and server.proc.poll() is not None:
            return False
        try:
            conn = (http.client.HTTPSConnection(server.host, timeout=2, context=ctx) if ctx
                    else http.client.HTTPConnection(server.host, timeout=2))
            conn.request("GET", "/v2/")
            status = conn.getresponse().status
            conn.close()
            if status in (200, 401):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def make_tls_files(d: Path) -> tuple[str, str, str]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it: ``(ca, cert, key)`` paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelhaul test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = d / "ca.pem", d / "server.pem", d / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return tuple(str(p) for p in paths)  # type: ignore[return-value]
