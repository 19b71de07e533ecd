"""The one way the server calls out (rest-hook deliveries, trusted issuers' JWKS, any later
webhook), and the destination policy every such call obeys (issue 26: server-side request forgery).

A caller chooses a Subscription's endpoint; the server then connects where the caller could not.
So, unless FHIR_OUTBOUND_ALLOW names the destination:
- only globally routable unicast addresses are connected to: loopback, private (RFC 1918,
  RFC 4193), shared (RFC 6598), link-local (169.254.0.0/16 with the cloud metadata address,
  fe80::/10), multicast, unspecified, documentation and reserved addresses are refused, and an IPv6
  address carrying an IPv4 one (::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4, Teredo) is judged by that
  IPv4 address too;
- the scheme is `https`.

The address is checked where the connection is made: the network backend below resolves the name,
refuses unless every address it resolves to is allowed, and connects to the address it checked,
so a name cannot resolve to a public address for the check and to a private one for the connection
(DNS rebinding). Redirects are never followed: a 3xx is an answer like any other, so there is no
second destination to check. No proxy from the environment is used (the policy must see the
destination itself). Each call has a time limit for the whole exchange and reads at most
`max_bytes` of the answer.

FHIR_OUTBOUND_ALLOW (comma-separated) lists exceptions: CIDRs (`10.1.0.0/16`, `::1/128`), whose
addresses may be connected to, and host names (`receiver.internal`), connected to whatever they
resolve to. Plain `http` is allowed to those destinations only, named as the allow list names them
(a listed host name, or a literal address inside a listed CIDR).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import typing
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

import httpcore

from fhir_server.config import Settings, SettingInvalid

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
# RFC 6761: `localhost` and names under it are loopback, whatever a resolver would say.
LOCALHOST_ADDRESSES = (ip_address("127.0.0.1"), ip_address("::1"))
# RFC 6052's well-known NAT64 prefix: a gateway there reaches the IPv4 address in the last 32 bits.
NAT64 = ip_network("64:ff9b::/96")
SCHEMES = ("https", "http")
FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})
HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9])?)*")


class OutboundError(Exception):
    """The call did not get an answer; the message names the destination and why, nothing else."""


class Refused(OutboundError):
    """The destination policy forbids this call; nothing was sent."""


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4, Teredo), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _kind(address: Address) -> str | None:
    """What makes an address one the server must not reach, or None for a global unicast address."""
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:  # only another way to write the IPv4 address
            return _kind(address.ipv4_mapped)
        inner = _embedded_ipv4(address)
        if inner is not None and _kind(inner) is not None:
            return f"{_kind(inner)} (as {inner})"
    checks = (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
              ("link-local", address.is_link_local), ("multicast", address.is_multicast),
              ("reserved", address.is_reserved), ("private", address.is_private),
              ("not globally routable", not address.is_global))
    return next((name for name, hit in checks if hit), None)


def _host(name: str) -> str:
    return name.strip().lower().rstrip(".")


def _literal(host: str) -> Address | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True)
class Policy:
    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()
    # The longest a whole call may take, and the most bytes of an answer read.
    timeout: float = 10.0
    max_bytes: int = 1024 * 1024

    @classmethod
    def parse(cls, allow: str | None, timeout: float = 10.0, max_bytes: int = 1024 * 1024) -> Policy:
        networks: list[Network] = []
        hosts: set[str] = set()
        for entry in (allow or "").split(","):
            entry = entry.strip()
            if not entry:
                continue
            if "/" in entry or _literal(entry) is not None:
                try:
                    networks.append(ip_network(entry, strict=False))
                except ValueError:
                    raise SettingInvalid(f"FHIR_OUTBOUND_ALLOW: {entry!r} is not a CIDR") from None
            elif HOST_NAME.fullmatch(_host(entry)):
                hosts.add(_host(entry))
            else:
                raise SettingInvalid(f"FHIR_OUTBOUND_ALLOW: {entry!r} is neither a CIDR nor a host name")
        return cls(tuple(networks), frozenset(hosts), timeout, max_bytes)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls.parse(settings.outbound_allow, settings.outbound_timeout_ms / 1000, settings.outbound_max_bytes)

    def _listed(self, address: Address) -> bool:
        inner = _embedded_ipv4(address) if isinstance(address, IPv6Address) else None
        return any(a in n for n in self.networks for a in (address, inner) if a is not None and a.version == n.version)

    def address_refusal(self, host: str, address: Address) -> str | None:
        """Why `address` (which `host` names or resolves to) may not be connected to, or None."""
        if _host(host) in self.hosts or self._listed(address):
            return None
        kind = _kind(address)
        return None if kind is None else f"{address} is {kind}"

    def url_refusal(self, url: str) -> str | None:
        """Why a call to `url` is refused, from the URL alone (no DNS: names are resolved, and their
        addresses checked, at each connection), or None. Subscription endpoints are checked here."""
        try:
            parts = urlsplit(url)
            port_given = parts.port != 0  # urlsplit checks the port only when asked for it
        except ValueError:
            return "it is not a URL"
        if parts.scheme not in SCHEMES or not parts.hostname or not port_given:
            return "it is not an http or https URL"
        host = _host(parts.hostname)
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        elif host == "localhost" or host.endswith(".localhost"):
            addresses = list(LOCALHOST_ADDRESSES)
        else:
            addresses = []
        for address in addresses:
            refusal = self.address_refusal(host, address)
            if refusal is not None:
                return refusal
        if parts.scheme == "http" and not (host in self.hosts or (literal is not None and self._listed(literal))):
            return "plain http is allowed only to destinations FHIR_OUTBOUND_ALLOW lists; use https"
        return None

    async def connectable(self, host: str, port: int) -> str:
        """The address to connect to for `host`, resolved now; Refused unless all it resolves to is allowed."""
        loop = asyncio.get_running_loop()
        try:
            found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise OutboundError(f"{host} cannot be resolved ({exc.__class__.__name__})") from None
        addresses = [ip_address(str(info[4][0]).partition("%")[0]) for info in found]
        for address in addresses:
            refusal = self.address_refusal(host, address)
            if refusal is not None:
                raise Refused(f"{host}: {refusal} (FHIR_OUTBOUND_ALLOW does not list it)")
        if not addresses:
            raise OutboundError(f"{host} resolves to no address")
        return str(addresses[0])


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to an address the policy allowed, resolved for this connection."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        address = await self.policy.connectable(host, port)
        return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


# What a connection, an exchange or a peer can do wrong; each becomes an OutboundError.
_FAILURES = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
             httpcore.UnsupportedProtocol, TimeoutError, ssl.SSLError, OSError, ValueError)


@dataclass
class OutboundClient:
    """Keeps connections to the destinations it called (each one made to a checked address)."""

    policy: Policy
    _pool: httpcore.AsyncConnectionPool = field(init=False)

    def __post_init__(self) -> None:
        self._pool = httpcore.AsyncConnectionPool(ssl_context=ssl.create_default_context(),
                                                  network_backend=_CheckedBackend(self.policy))

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None, content: bytes = b"",
                      timeout: float | None = None) -> Answer:
        """The answer of `url`, whatever its status (3xx included: redirects are not followed).
        Refused when the policy forbids the destination, OutboundError when no answer came in
        time or within the size limit."""
        refusal = self.policy.url_refusal(url)
        if refusal is not None:
            raise Refused(f"{url}: {refusal}")
        limit = self.policy.timeout if timeout is None else timeout
        parts = urlsplit(url)
        host = parts.hostname or ""
        shown = f"[{host}]" if ":" in host else host
        # The framing headers are the client's own: a subscriber's `channel.header` cannot change them.
        sent = {name: value for name, value in (headers or {}).items() if name.lower() not in FRAMING}
        sent.update({"Host": shown + (f":{parts.port}" if parts.port else ""), "Content-Length": str(len(content))})
        try:
            async with asyncio.timeout(limit):
                return await self._exchange(method, url, sent, content, limit)
        except OutboundError:
            raise
        except _FAILURES as exc:
            raise OutboundError(f"{url} could not be reached ({exc.__class__.__name__})") from None

    async def _exchange(self, method: str, url: str, headers: dict[str, str], content: bytes, limit: float) -> Answer:
        extensions = {"timeout": {"connect": limit, "read": limit, "write": limit, "pool": limit}}
        async with self._pool.stream(method, url, headers=list(headers.items()), content=content,
                                     extensions=extensions) as response:
            body = bytearray()
            async for chunk in response.aiter_stream():
                body.extend(chunk)
                if len(body) > self.policy.max_bytes:
                    raise OutboundError(f"{url} answered more than {self.policy.max_bytes} bytes")
            answered = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
            return Answer(response.status, answered, bytes(body))

    async def aclose(self) -> None:
        await self._pool.aclose()
