"""The one redaction of URLs every printed, logged or returned text goes through: a URL's
credentials (its userinfo, and the values of its secret-named parameters) masked wherever it
stands in a text."""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "[redacted]"

# A URL inside free text: a scheme, "://", then everything up to a space, a quote or a bracket
# that cannot be part of it (so a URL inside a JSON string or a repr stops at its quote), and
# not on the punctuation of the sentence around it.
_URL = re.compile(r"""[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>`]*[^\s"'<>`.,;:!?)]""")
# A query (or fragment) parameter whose name says its value is a secret: password, passwd,
# pwd, pass, key, api-key, api_key, apikey, token, access_token, auth, secret, client_secret,
# signature, sig, credential(s)… Over-masking a harmless one (``ssl_keyfile``) is the safe side.
_SECRET_NAME = re.compile(r"pass|pwd|key|token|secret|auth|sig|credential", re.IGNORECASE)
_PARAMETER = re.compile(r"(?:^|(?<=&))([^&=]+)=([^&]*)")
_PORT = re.compile(r"\d+")


def _userinfo_end(rest: str) -> int:
    """In ``rest`` (a URL after its ``://``), the index of the ``@`` that ends the userinfo
    holding a password, or -1: there is none (or a user name alone, which is no secret)."""
    authority_end = next((i for i, c in enumerate(rest) if c in "/?#"), len(rest))
    at = rest.rfind("@", 0, authority_end)  # the last one: a password may hold "@" itself
    if at >= 0:
        return at if ":" in rest[:at] else -1
    # A password holding "/", "?" or "#" (unencoded, as users do write it: "redis://:pa/ss@host/0").
    # The text up to the last "@" is userinfo when its user name holds none of "/?#" and what
    # follows its ":" is no port: "https://host:443/@someone" is a path, not userinfo.
    at = rest.rfind("@")
    user, colon, password = rest[:max(at, 0)].partition(":")
    if at < 0 or not colon or any(c in user for c in "/?#") or (user and _PORT.fullmatch(password.partition("/")[0])):
        return -1
    return at


def _mask_parameters(part: str) -> str:
    """``part`` (a query or a fragment, without its ``?``/``#``) with the values of its
    secret-named parameters masked."""
    def mask(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        return f"{name}={MASK}" if value and _SECRET_NAME.search(unquote(name)) else match.group(0)

    return _PARAMETER.sub(mask, part)


def _masked_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    at = _userinfo_end(rest)
    if at >= 0:
        rest = MASK + rest[at:]
        authority_end = len(MASK) + 1
    else:
        authority_end = 0
    query = next((i for i in range(authority_end, len(rest)) if rest[i] in "?#"), len(rest))
    head, tail = rest[:query], rest[query:]
    fragment = tail.find("#")
    query_part, fragment_part = (tail, "") if fragment < 0 else (tail[:fragment], tail[fragment:])
    if query_part:
        query_part = "?" + _mask_parameters(query_part[1:])
    if fragment_part:  # OAuth-style fragments carry tokens too: "#access_token=…"
        fragment_part = "#" + _mask_parameters(fragment_part[1:])
    return f"{scheme}://{head}{query_part}{fragment_part}"


def without_credentials(text: str) -> str:
    """``text`` with the credentials of every URL in it masked: the userinfo holding a password
    (``scheme://user:password@host``, ``scheme://:password@host``, a password holding ``@``
    or ``/`` included) and the values of secret-named query or fragment parameters
    (``?password=…``, ``?api-key=…``, ``&token=…``, ``#access_token=…``); the rest is kept."""
    return _URL.sub(lambda match: _masked_url(match.group(0)), text)


def url_secrets(url: str | None) -> list[str]:
    """The secret values a URL holds (its password, its secret-named parameters' values), as
    written and percent-decoded: a library may echo one bare, outside the URL."""
    if not url or "://" not in url:
        return []
    rest = url.partition("://")[2]
    found: list[str] = []
    at = _userinfo_end(rest)
    if at >= 0:
        found.append(rest[:at].partition(":")[2])
        rest = rest[at + 1:]
    query = next((i for i, c in enumerate(rest) if c in "?#"), -1)
    if query >= 0:
        for part in rest[query + 1:].split("#"):
            found += [value for name, value in _PARAMETER.findall(part) if value and _SECRET_NAME.search(unquote(name))]
    return [secret for value in found for secret in {value, unquote(value)}]
