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

# parameter names that mean a secret wherever they appear as ``name=value`` (compared case-insensitively)
SECRET_NAMES = (
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "awsaccesskeyid", "key-pair-id",
    "x-goog-signature", "x-goog-credential", "x-goog-security-token", "googleaccessid",
    "access_token", "id_token", "refresh_token", "private_token", "client_secret", "password", "passwd",
    "api_key", "api-key", "apikey",
)
# short or common names, secret only as a URL query parameter (after ``?``, ``&`` or ``;``): S3 v2 and
# CloudFront signatures and policies, Azure SAS (signature, expiry, user-delegation key), generic tokens
SECRET_QUERY_PARAMS = (
    "signature", "policy", "sig", "se", "skoid", "sktid", "skt", "ske", "sks", "skv",
    "token", "auth", "authorization", "secret", "pwd", "key",
)


def _names(names: tuple[str, ...]) -> str:
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


# "=" (maybe %3D inside another URL) and the value up to the next separator
_VALUE = r"(?P<eq>=|%3D)(?P<value>.+?)(?=&|%26|#|;|\s|[\"'<>]|$)"
_IN_QUERY = re.compile(
    rf"(?i)(?:(?<=[?&;])|(?<=%3F)|(?<=%26))(?P<name>{_names(SECRET_NAMES + SECRET_QUERY_PARAMS)}){_VALUE}")
_ANYWHERE = re.compile(rf"(?i)(?<![\w.\-%])(?P<name>{_names(SECRET_NAMES)}){_VALUE}")
_AUTH_HEADER = re.compile(r"(?i)(authorization\s*[:=]\s*(?:bearer|basic|token)?\s*)[^\s,;\"']+")


def redact(text: str) -> str:
    """``text`` without URL userinfo, secret query values or Authorization header values."""
    if not text:
        return text
    text = _USERINFO.sub(r"\g<scheme>", text)
    for pattern in (_IN_QUERY, _ANYWHERE):
        text = pattern.sub(lambda m: f"{m['name']}{m['eq']}{MASK}", text)
    return _AUTH_HEADER.sub(rf"\g<1>{MASK}", text)
