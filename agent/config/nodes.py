"""A broker cluster in one setting: `broker_url` as several URLs, one per node, with commas.

    broker_url = "amqps://bogor-kota-01@rmq-1.example/%2F,amqps://bogor-kota-01@rmq-2.example/%2F"

One form for every source (the TOML file, PRINTSTATION_BROKER_URL, --broker-url), so a
cluster is written the same way everywhere and the many places that take a broker URL as
text (masking, the password, the central tools) keep taking text. Every node must name the
same scheme, user and vhost: the password from broker_password_file is the one user's, the
queues live in one vhost, and a cluster reached over TLS on one node and in the clear on
another would give the password away on failover. A comma inside a password in the URL is
written %2C (the password belongs in broker_password_file anyway).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

SCHEMES = ("amqp://", "amqps://")


def split_nodes(value: str) -> list[str]:
    """The node URLs in `value`, in the order given (blank entries left out)."""
    return [part.strip() for part in value.split(",") if part.strip()]


def join_nodes(urls: list[str]) -> str:
    return ",".join(urls)


def _identity(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return parts.scheme, unquote(parts.username or "guest"), vhost


def node_address(url: str) -> str:
    """`host:port` of one node URL, for logs and messages (never the password)."""
    parts = urlsplit(url)
    try:
        port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    except ValueError:
        port = 0
    return f"{parts.hostname or 'localhost'}:{port}"


def node_problems(value: str) -> list[str]:
    """What is wrong with `value` as one or several node URLs: one line per problem."""
    if not value.strip():
        return ["is empty; give amqp://HOST or several URLs separated by commas"]
    raw = value.split(",")
    if len(raw) > 1 and any(not part.strip() for part in raw):
        return ["has an empty entry between commas; give node URLs separated by single commas"]
    urls = split_nodes(value)
    several = len(urls) > 1
    found: list[str] = []
    seen: set[str] = set()
    for number, url in enumerate(urls, 1):
        which = f"node {number} ({node_address(url)}) " if several else ""
        if not url.startswith(SCHEMES):
            found.append(f"{which}must start with amqp:// or amqps://")
            continue
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError:
            found.append(f"{which}has a port that is not a number from 1 to 65535")
            continue
        if not parts.hostname:
            found.append(f"{which}names no host")
            continue
        address = node_address(url)
        if address in seen:
            found.append(f"{which}is given twice")
        seen.add(address)
    if found or not several:
        return found
    scheme, user, vhost = _identity(urls[0])
    for number, url in enumerate(urls[1:], 2):
        other = _identity(url)
        which = f"node {number} ({node_address(url)})"
        if other[0] != scheme:
            found.append(f"{which} is {other[0]}:// but node 1 is {scheme}://; every node "
                         "needs the same scheme (a failover must not drop TLS)")
        if other[1] != user:
            found.append(f"{which} names user {other[1]!r} but node 1 names {user!r}; every "
                         "node needs the same user")
        if other[2] != vhost:
            found.append(f"{which} names vhost {other[2]!r} but node 1 names {vhost!r}; "
                         "every node needs the same vhost")
    return found


def rotated(urls: list[str], start: int) -> list[str]:
    """The nodes beginning with the one at `start`, then the rest in order, round."""
    if not urls:
        return urls
    start %= len(urls)
    return urls[start:] + urls[:start]
