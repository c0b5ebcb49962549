"""TLS failures turned into :class:`TLSError` with what failed, in words."""

from __future__ import annotations

import ssl

from goomerang_proto.errors import TLSError

__all__ = ["tls_error"]


def tls_error(server: str, hostname: str | None, exc: ssl.SSLError) -> TLSError:
    """A TLSError for a failed handshake with ``server`` (``exc`` becomes its cause).

    Certificate failures name the verification result (unknown CA, expired,
    hostname mismatch: OpenSSL's ``verify_message``) and the name checked.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        what = exc.verify_message or exc.reason or str(exc)
        detail = f"certificate verification failed: {what}"
        if hostname:
            detail += f" (checked against {hostname!r})"
    else:
        detail = exc.reason or str(exc)
    error = TLSError(f"TLS handshake with {server} failed: {detail}")
    error.__cause__ = exc
    return error
