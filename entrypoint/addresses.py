"""Addresses as users write them and as sockets need them: hosts, ports, URLs.

One home for the rules every layer shares: what an IP literal is, how ``host:port`` is
split, how an IPv6 address is bracketed, and how a URL is shown: in logs without its
password or credential query values, in usage errors with no user information or query
value at all.
"""

from __future__ import annotations

# The C module that socket.py wraps: all that is used here is the same in both, and
# socket.py's own imports (selectors, array...) cost every healthcheck ~2 ms.
import _socket as socket
from collections.abc import Callable


def parse_port(text: str) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        raise ValueError("expected a port number 1-65535") from None
    if not 1 <= port <= 65535:
        raise ValueError("expected a port number 1-65535")
    return port


def parse_host(text: str) -> str:
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):  # accept the URL form of IPv6 literals
        host = host[1:-1]
        if ip_family(host) != 6:
            raise ValueError("brackets are only for IPv6 literals")
    if not host:
        raise ValueError("must not be empty")
    if any(ch.isspace() or ch in "/?#@" or not ch.isprintable() for ch in host) or (
        ":" in host and not ip_family(host)
    ):
        raise ValueError("expected a host name, IPv4 or IPv6 literal (no scheme, port or path)")
    return host


def split_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); ValueError says what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r}: expected host:port")
    return parse_host(host), parse_port(port)


def ip_family(text: str) -> int | None:
    """4 or 6 for an IP literal, None for anything else (a name to resolve)."""
    # inet_pton is in C and already loaded; the ipaddress module costs a millisecond of
    # start-up on every container start.
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        try:
            socket.inet_pton(family, text)
        except (OSError, ValueError):
            continue
        return version
    return None


DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "redis": 6379,
    "rediss": 6379,
    "postgresql": 5432,
    "postgres": 5432,
}


# A query key holding one of these words names a credential (api_key, access_token,
# X-Amz-Signature, auth): its value is shown as *** wherever the URL is.
CREDENTIAL_WORDS = ("token", "key", "secret", "password", "passwd", "sig", "signature", "auth")


def names_credential(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in CREDENTIAL_WORDS)


def _redact_query(query: str, hide: Callable[[str], bool]) -> str:
    """``query`` with the value of each pair whose (decoded) key ``hide`` names as ***."""
    import urllib.parse  # noqa: PLC0415 - see redact_url

    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and value and hide(urllib.parse.unquote_plus(name)):
            value = "***"
        pairs.append(f"{name}{equals}{value}")
    return "&".join(pairs)


def redact_url(url: str) -> str:
    """The URL as logs show it: any password and the value of any query key that names a
    credential replaced by ``***`` (user names and other values are kept: they help)."""
    import urllib.parse  # noqa: PLC0415 - only for URLs (--also, mesh), not on every start

    head, question, rest = url.partition("?")
    if question:
        query, hash_, fragment = rest.partition("#")
        url = f"{head}?{_redact_query(query, names_credential)}{hash_}{fragment}"
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:  # unparseable (e.g. "http://[::1"): hide any user information
        scheme, sep, rest = url.partition("://")
        return f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url
    if password is None:
        return url
    # From the text, not .hostname/.port: the URL may be invalid (a bad port), and this
    # is what the error saying so shows.
    host_and_port = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or ''}:***@{host_and_port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def url_keys_only(url: str) -> str:
    """The URL as a usage error shows it: no user information at all, and of its query
    the keys only (every value ***, the fragment too). Text-based, so it holds for a URL
    too broken to parse, which is when a usage error shows one."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    rest, hash_, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    shown = f"{scheme}{sep}{netloc}{slash}{path}"
    if question:
        shown += "?" + _redact_query(query, lambda _key: True)
    return shown + ("#***" if hash_ and fragment else hash_)


def url_error(url: str, problem: str) -> str:
    """``'URL': problem`` for a usage error: the URL keys only, and the problem (which a
    parser may have written with a piece of the URL in it) without the URL's user
    information or query values."""
    import re  # noqa: PLC0415 - see redact_url
    import urllib.parse  # noqa: PLC0415 - see redact_url

    _scheme, sep, rest = url.partition("://")
    rest = rest if sep else url
    userinfo = rest.partition("/")[0].rpartition("@")[0] if "@" in rest else ""
    values = [*userinfo.split(":"), *urllib.parse.unquote(userinfo).split(":")]
    query = rest.partition("#")[0].partition("?")[2]
    for pair in filter(None, query.split("&")):
        value = pair.partition("=")[2]
        values += [value, urllib.parse.unquote_plus(value)]
    values += [rest.partition("#")[2]]
    # Longest first, so a value holding another is hidden whole; only where it stands as a
    # word of its own (?transport=req must not turn "request" into "***uest"); a value of
    # one or two characters (?x=1) would blank ordinary words and protects nothing.
    for value in sorted({v for v in values if len(v) >= 3}, key=len, reverse=True):
        problem = re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", "***", problem)
    return f"{url_keys_only(url)!r}: {problem}"


def host_port(url: str) -> tuple[str, int]:
    """The host and port a URL names (the scheme's default port when it has none)."""
    import urllib.parse  # noqa: PLC0415 - only for URLs (--also, mesh), not on every start

    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{url_keys_only(url)!r} has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url_keys_only(url)!r} has an invalid port") from None
    if port == 0:  # urllib accepts 0; nothing listens there (tcp:// and zmq say the same)
        raise ValueError(f"{url_keys_only(url)!r} has an invalid port (expected 1-65535)")
    if port is None:
        port = DEFAULT_PORTS.get(parts.scheme)
    if port is None:
        raise ValueError(f"{url_keys_only(url)!r} needs a port")
    return parts.hostname, port


def bracket(host: str) -> str:
    """``host`` as it stands before ``:port``: an IPv6 literal in brackets."""
    return f"[{host}]" if ":" in host else host


def address_text(address: str, port: int | str) -> str:
    """``address:port``, with brackets around an IPv6 address."""
    return f"{bracket(address)}:{port}"


def socket_family(address: str) -> int:
    """The socket family of an IP literal (a name resolves to literals first)."""
    return socket.AF_INET6 if ip_family(address) == 6 else socket.AF_INET


def endpoint(address: str, port: int) -> str:
    """The ZeroMQ endpoint for an IP literal and port."""
    return f"tcp://{address_text(address, port)}"
