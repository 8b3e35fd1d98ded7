"""Where the fetch stage may connect: public addresses only (or the networks FETCH_ALLOW_NETWORKS lists), decided
when a connection is made, so a redirect, and a name that resolves one way for a check and another way for the
connection (DNS rebinding), get no further than the first request. Every address the name resolves to must be
allowed, not only the one connected to; the connection then goes to a checked address, never to the name.

httpx-secure does this for httpx's AsyncClient, but it resolves a name by connecting to it (a probe to a denied
address is still a connection) and checks only the address it reached: not what we promise, hence these lines.
"""
from __future__ import annotations

import ipaddress
import socket

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # an IPv4 address dressed as IPv6: judged as that IPv4 address


class Refused(Exception):
    """A connection the guard would not make; the message says why, for the file's status."""


def networks(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(n.strip(), strict=False) for n in spec.split(",") if n.strip())


def refusal(ip: Address, allow, public: bool = True) -> str | None:
    """Why an address may not be reached, or None if it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        elif ip in NAT64:
            ip = ipaddress.IPv4Address(ip.packed[-4:])
    if any(ip in net for net in allow):
        return None
    if ip == ipaddress.ip_address("169.254.169.254") or ip == ipaddress.ip_address("fd00:ec2::254"):
        return f"{ip} is the cloud metadata address"
    for kind in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):  # most telling first
        if getattr(ip, f"is_{kind}"):
            return f"{ip} is a {kind.replace('_', '-')} address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    if not public:
        return f"{ip} is outside FETCH_ALLOW_NETWORKS, and public addresses are not fetched here (FETCH_PUBLIC)"
    return None


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def resolve(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise Refused(f"{host} does not resolve: {e.strerror}") from None
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


class GuardedBackend(httpcore.NetworkBackend):
    def __init__(self, allow, public: bool = True):
        self.allow, self.public, self.inner = allow, public, httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if not self.public and not _literal(host):
            raise Refused(f"{host} is a name, and names are not resolved here: only addresses in "
                          "FETCH_ALLOW_NETWORKS are fetched (FETCH_PUBLIC is off)")
        addresses = resolve(host, port)
        for ip in addresses:
            if reason := refusal(ip, self.allow, self.public):
                raise Refused(f"{host} resolves to {ip}: {reason}; only public addresses are fetched"
                              f"{'' if host == str(ip) else ' (every address a name resolves to must be)'}")
        error: Exception = Refused(f"{host} has no address")
        for ip in addresses:
            try:  # TLS still names the host (SNI, certificate): httpcore takes it from the URL, not from here
                return self.inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as e:
                error = e
        raise error

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport, its connection pool given the guard as its network backend (httpx 0.28 offers
    no argument for one; tests/test_capture.py proves the guard is in the path). No proxy from the environment:
    a proxy would resolve the name itself."""

    def __init__(self, allow, public: bool = True):
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(trust_env=False),
                                             network_backend=GuardedBackend(allow, public), max_connections=4)
