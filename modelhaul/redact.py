"""Remove credentials from text before it is stored (provenance, configs) or printed (errors, logs).

Every place that keeps or shows a URI goes through :func:`redact`, so one function has to know
every form a credential takes in a URL:

* userinfo: ``scheme://user:password@host`` — the password may itself hold a raw ``@``
  (``http://bob:Track@Pass99@host``); userinfo runs to the *last* ``@`` before the path, as
  RFC 3986 parsers read it, so no part of it survives;
* signed-URL and token query parameters: AWS SigV4 (``X-Amz-Signature``, ``X-Amz-Credential``,
  ``X-Amz-Security-Token``), S3 v2 and CloudFront (``Signature``, ``Key-Pair-Id``, ``Policy``,
  ``AWSAccessKeyId``), Azure SAS (``sig``, ``se``, ``skoid``...), GCS (``X-Goog-Signature``,
  ``GoogleAccessId``), and generic ``token``, ``access_token``, ``password``, ``api_key``...
  (also when the ``=`` is percent-encoded inside another URL);
* ``Authorization: Bearer/Basic ...`` header values.
"""

from __future__ import annotations

import re

MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#\s]*@")

# query parameter names whose value is a secret or part of a signature (compared case-insensitively)
SECRET_PARAMS = (
    # AWS SigV4 / SigV2 / CloudFront
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "signature", "awsaccesskeyid",
    "key-pair-id", "policy",
    # Google Cloud Storage
    "x-goog-signature", "x-goog-credential", "x-goog-security-token", "googleaccessid",
    # Azure SAS (signature, expiry, user-delegation key fields)
    "sig", "se", "skoid", "sktid", "skt", "ske", "sks", "skv",
    # generic tokens and passwords
    "token", "access_token", "id_token", "refresh_token", "auth", "authorization", "password", "passwd",
    "pwd", "secret", "client_secret", "api_key", "api-key", "apikey", "key", "private_token",
)
_NAMES = "|".join(re.escape(n) for n in sorted(SECRET_PARAMS, key=len, reverse=True))
# a parameter name not glued to a longer name, "=" (maybe %3D), and its value up to the next separator
_QUERY = re.compile(
    rf"(?i)(?:(?<=%3F)|(?<=%26)|(?<![\w.\-%]))(?P<name>{_NAMES})(?P<eq>=|%3D)(?P<value>.+?)(?=&|%26|#|;|\s|[\"'<>]|$)"
)
_AUTH_HEADER = re.compile(r"(?i)(authorization\s*[:=]\s*(?:bearer|basic|token)?\s*)[^\s,;\"']+")


def redact(text: str) -> str:
    """``text`` without URL userinfo, secret query values or Authorization header values."""
    if not text:
        return text
    text = _USERINFO.sub(r"\g<scheme>", text)
    text = _QUERY.sub(lambda m: f"{m['name']}{m['eq']}{MASK}", text)
    return _AUTH_HEADER.sub(rf"\g<1>{MASK}", text)
