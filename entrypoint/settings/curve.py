"""CURVE authentication: the gateway proves who it is, and may check who we are.

The gateway's public key comes from ``--curve-server-key`` / GATEWAY_CURVE_SERVER_KEY or a
file (GATEWAY_CURVE_SERVER_KEY_FILE, the Docker secrets convention). Our keypair comes
from GATE_CURVE_SECRET_KEY_FILE (the public half is derived, or checked against
GATE_CURVE_PUBLIC_KEY_FILE), or is generated fresh for this process when none is given.
The secret key is only ever read from a file, so it is never in an environment variable
that the runner would inherit, and it never appears in a repr, a log or an error.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import zmq

from entrypoint.errors import UsageError
from entrypoint.files import read_regular_file
from entrypoint.settings.options import CURVE_OPTIONS, Option, Sources, one_of

Z85_KEY = re.compile(r"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")
# zmq certificate files (zmq.auth.create_certificates) hold `public-key = "..."` lines.
CERT_LINE = re.compile(r'^\s*(public|secret)-key\s*=\s*"([^"]{40})"', re.MULTILINE)
MAX_KEY_FILE_BYTES = 4096  # a certificate file is ~300 bytes; only this much is read


@dataclasses.dataclass(frozen=True)
class CurveKeys:
    server_public: bytes
    client_public: bytes
    client_secret: bytes = dataclasses.field(repr=False)
    ephemeral: bool = False

    def apply(self, sock: zmq.Socket[Any]) -> None:
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.client_public
        sock.curve_secretkey = self.client_secret

    def describe(self) -> dict[str, str]:
        """What may be logged: public keys (shortened) and where our keypair came from."""
        return {
            "server_key": self.server_public.decode()[:8] + "...",
            "client_key": "ephemeral"
            if self.ephemeral
            else self.client_public.decode()[:8] + "...",
        }


def _option(field: str) -> Option:
    return next(opt for opt in CURVE_OPTIONS if opt.field == field)


def read_key(path: str, kind: str, where: str) -> bytes:
    """A 40-character Z85 key from a file: the bare key, or a zmq certificate file."""
    try:
        content = read_regular_file(path, MAX_KEY_FILE_BYTES)[:MAX_KEY_FILE_BYTES].decode("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII text"
        raise UsageError(f"{where}: cannot read {path}: {reason}") from None
    certificate = dict(CERT_LINE.findall(content))
    key = certificate.get(kind, content.strip()) if certificate else content.strip()
    return check_key(key, where, f"the {kind} key in {path}")


def check_key(key: str, where: str, what: str) -> bytes:
    # Never echo the text: it may be a secret key pasted in the wrong place.
    if not Z85_KEY.fullmatch(key):
        raise UsageError(f"{where}: {what} is not a 40-character Z85 CURVE key")
    return key.encode("ascii")


def curve_from_sources(sources: Sources) -> CurveKeys | None:
    """The CURVE keys the flags and variables describe, or None when CURVE is not used."""
    inline, in_file = one_of(
        sources.given(_option("curve_server_key")),
        sources.given(_option("curve_server_key_file")),
        lambda key, path: f"give the gateway's key once: {key.where} and {path.where} are both set",
    )
    secret = sources.given(_option("curve_secret_key_file"))
    public = sources.given(_option("curve_public_key_file"))
    if inline:
        server = check_key(inline.raw, inline.where, "the value")
    elif in_file:
        server = read_key(in_file.raw, "public", in_file.where)
    else:
        client_key = secret or public
        if client_key is not None:
            raise UsageError(
                f"{client_key.where} needs the gateway's key: set --curve-server-key / "
                "GATEWAY_CURVE_SERVER_KEY (or its _FILE variant)"
            )
        return None
    if not zmq.has("curve"):
        raise UsageError("this libzmq was built without CURVE support")
    if secret is None:
        if public:
            raise UsageError(
                f"{public.where} needs --curve-secret-key-file / GATE_CURVE_SECRET_KEY_FILE"
            )
        client_public, client_secret = zmq.curve_keypair()
        return CurveKeys(server, client_public, client_secret, ephemeral=True)
    client_secret = read_key(secret.raw, "secret", secret.where)
    client_public = zmq.curve_public(client_secret)
    if public and read_key(public.raw, "public", public.where) != client_public:
        raise UsageError(
            f"{public.where}: this public key does not belong to the secret key in {secret.where}"
        )
    return CurveKeys(server, client_public, client_secret)
