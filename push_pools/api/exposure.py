"""Who may reach the server by name: the Host and Origin checks against DNS rebinding and
cross-site requests, and what counts as a loopback bind.

A browser page on attacker.example can make its own name resolve to 127.0.0.1 (DNS rebinding)
and then talk to a server with no API key as if it were same-origin; the Host header still
says attacker.example. So requests are answered only for the server's own names.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["allowed_hosts", "host_of", "is_loopback", "is_wildcard"]

ALLOWED_HOSTS_ENV = "PUSH_POOLS_ALLOWED_HOSTS"
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_wildcard(host: str | None) -> bool:
    """Whether binding `host` listens on every address (0.0.0.0, ::, or another spelling)."""
    if not host:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:  # a host name
        return False


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the server reachable from this machine only."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        # A name: loopback only if every address it resolves to is.
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError:
            return False
        return bool(infos) and all(
            ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
        )


def host_of(header: str) -> str:
    """The name in a Host header or URL netloc, lowercased, without port or IPv6 brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header[1:]
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header  # a bare IPv6 address, or no port


def allowed_hosts(bind_host: str | None, urls: Iterable[str | None]) -> set[str] | None:
    """The names this server answers to; None when PUSH_POOLS_ALLOWED_HOSTS is "*" (any).

    Loopback names always; the bind address; this machine's hostname and its addresses when
    bound to all interfaces; the hosts of the server's own URLs (PUSH_POOLS_API_URL,
    PUSH_POOLS_PUBLIC_API_URL); and PUSH_POOLS_ALLOWED_HOSTS, comma-separated.
    """
    configured = [h.strip() for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip()]
    if "*" in configured:
        return None
    hosts = set(_LOOPBACK_NAMES) | {host_of(h) for h in configured}
    if is_wildcard(bind_host):
        hosts |= _machine_names()
    elif bind_host:
        hosts.add(host_of(bind_host))
    for url in urls:
        if url:
            netloc = urlsplit(url).netloc
            if netloc:
                hosts.add(host_of(netloc.rpartition("@")[2]))
    return hosts


def _machine_names() -> set[str]:
    # Not getfqdn(): a reverse DNS lookup can stall server start for seconds.
    names = {socket.gethostname().lower()}
    for name in list(names):
        try:
            names |= {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
        except OSError:
            pass
    return names
