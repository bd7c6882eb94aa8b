"""Safe connections: which hosts a task talks to, host key verification, and reachability errors.

Fabric on its own accepts any host key and never reads known_hosts (fabric#1804, #2071), and it
hands a task a *local* context when no host is given. Here every connection verifies the host key
against known_hosts (OpenSSH's files and the configured ones), and a task without a target is an
error instead of running "remote" commands on the laptop.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from fabric import Connection

from tasks.errors import ConfigError, ConnectError
from tasks.executor import CLI_HOSTS_KEY
from tasks.hosts import cli_host, host_spec
from tasks.settings import Settings, resolve

ALLOWED_NETWORKS_ENV = "CYNOW_OPS_ALLOWED_NETWORKS"
DEFAULT_USER_KNOWN_HOSTS = ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"]
DEFAULT_GLOBAL_KNOWN_HOSTS = ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint, as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class UnknownHostKey(Exception):
    def __init__(self, hostname: str, key: paramiko.PKey):
        super().__init__(hostname)
        self.hostname, self.key = hostname, key


class RevokedHostKey(UnknownHostKey):
    """The server offered a key a known_hosts file marks `@revoked`."""


@dataclass
class KnownHosts:
    """What known_hosts files say: host keys, revoked keys, and the lines not honoured."""

    entries: list = field(default_factory=list)  # paramiko HostKeyEntry, in file order
    revoked: set = field(default_factory=set)  # key blobs (PKey.asbytes())
    cert_authorities: list = field(default_factory=list)  # line numbers of @cert-authority


def _entry(fields: list[str]) -> paramiko.hostkeys.HostKeyEntry | None:
    """`patterns keytype base64` as paramiko's entry, or None for a line paramiko cannot read."""
    if len(fields) < 3:
        return None
    names, kind, blob = fields[:3]
    try:
        key = paramiko.PKey.from_type_string(kind, base64.b64decode(blob, validate=True))
    except Exception:
        # A key type paramiko lacks, bad base64 or a truncated blob: OpenSSH skips such a
        # line, and one bad line must not end every task with a traceback (paramiko's own
        # HostKeys.load raises InvalidHostKey on it).
        return None
    return paramiko.hostkeys.HostKeyEntry(names.split(","), key)


def parse_known_hosts(text: str) -> KnownHosts:
    """Parse a known_hosts file as OpenSSH does, markers included.

    paramiko's HostKeys.load reads `@cert-authority`/`@revoked` as a host pattern and raises on
    the key that follows. Hashed patterns (`|1|salt|hmac`) are kept as written: paramiko's
    lookup hashes the host name with each entry's salt.
    """
    known = KnownHosts()
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else None
        entry = _entry(fields)
        if marker == "@revoked":
            if entry is not None:
                known.revoked.add(entry.key.asbytes())
        elif marker == "@cert-authority":
            known.cert_authorities.append(lineno)
        elif marker is None and entry is not None:
            known.entries.append(entry)
        # Any other marker is one OpenSSH does not know either: the line is ignored.
    return known


def load_known_hosts(paths: list[str]) -> tuple[paramiko.HostKeys, frozenset, list[str]]:
    """(host keys, revoked key blobs, warnings) from the files that exist, in order."""
    parsed = []
    for path in paths:
        try:
            text = Path(path).read_text(errors="replace")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        except OSError as e:
            raise ConfigError(f"cannot read known_hosts file {path}: {e.strerror}") from None
        parsed.append((path, parse_known_hosts(text)))
    revoked = frozenset().union(*(k.revoked for _, k in parsed))
    keys = paramiko.HostKeys()
    for _, known in parsed:
        # A revoked key stays refused even where another line lists it, as in OpenSSH, and for
        # every host, whatever the @revoked line's pattern (stricter: one rule, no matching).
        # Appended as HostKeys.load does: add() rescans every entry, slow on a big file.
        keys._entries.extend(e for e in known.entries if e.key.asbytes() not in revoked)
    warnings = [
        f"{path}: @cert-authority on line {', '.join(map(str, k.cert_authorities))} skipped "
        "(paramiko cannot check host certificates); a host signed by it needs its own key line"
        for path, k in parsed
        if k.cert_authorities
    ]
    return keys, revoked, warnings


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """A warning on stderr once per run, not once per host."""
    if message not in _warned:
        _warned.add(message)
        print(f"cynow-ops: warning: {message}", file=sys.stderr)


# StrictHostKeyChecking ranked by what it lets through: no, off and ask (a prompt nobody
# answers in a task) rank lowest; `host_key_policy: strict` ranks as `yes`.
_STRICTNESS = {"yes": 2, "strict": 2, "accept-new": 1}


def accepts_new_keys(policy: str, strict_host_key_checking: str | None) -> bool:
    """Trust on first use only if the stricter of config and ssh_config is accept-new.

    So `StrictHostKeyChecking yes` in ssh_config beats `host_key_policy: accept-new`, and a
    looser ssh_config never loosens the config (its `no` is never honoured).
    """
    ssh = str(strict_host_key_checking or "").strip().lower()
    rank = max(_STRICTNESS.get(policy, 2), _STRICTNESS.get(ssh, 0))
    return rank == _STRICTNESS["accept-new"]


def known_hosts_line(hostname: str, key: paramiko.PKey, hashed: bool) -> str:
    """One known_hosts line; hashed (`|1|salt|hmac-sha1`) as `HashKnownHosts yes` writes it."""
    name = paramiko.HostKeys.hash_host(hostname) if hashed else hostname
    return f"{name} {key.get_name()} {key.get_base64()}\n"


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Refuse unknown keys; with accept-new, trust a first key and record it (never a changed one).

    A *changed* key never reaches this policy: paramiko raises BadHostKeyException for it.
    """

    def __init__(
        self,
        accept_new: bool,
        save_to: str | None,
        revoked: frozenset = frozenset(),
        hash_hosts: bool = False,
    ):
        self.accept_new, self.save_to = accept_new, save_to
        self.revoked, self.hash_hosts = revoked, hash_hosts

    def missing_host_key(self, client, hostname, key):
        # Checked first: accept-new must never record a revoked key as trusted.
        if key.asbytes() in self.revoked:
            raise RevokedHostKey(hostname, key)
        if not self.accept_new or not self.save_to:
            raise UnknownHostKey(hostname, key)
        path = Path(self.save_to)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(known_hosts_line(hostname, key, self.hash_hosts))
        client.get_host_keys().add(hostname, key.get_name(), key)


def target_hosts(c, settings: Settings) -> list[str | dict]:
    """The host specs a task runs on: the Connection Fabric made from -H, else the target's hosts.

    Never the local machine: with neither -H nor a target this is an error.
    """
    cli = c.config.get(CLI_HOSTS_KEY)
    if cli is not None:
        # `-H a,b,c`, handed over whole by tasks.executor: checked like a target's hosts.
        if not cli:
            raise ConfigError("-H names no host; write e.g. -H cynow@10.0.0.5,cynow@10.0.0.6")
        return [cli_host(h) for h in cli]
    if isinstance(c, Connection):
        # Fabric parsed -H user@host:port into parts: keep them apart (an IPv6 address has
        # colons of its own) and keep the alias, so ssh_config still applies.
        return [{"host": c.original_host, "user": c.user, "port": c.port}]
    if settings.hosts:
        return [host_spec(h) for h in settings.hosts]  # validated by settings already
    targets = ", ".join(sorted(getattr(c.config, "cynow", {}).get("targets", {}) or {}))
    raise ConfigError(
        "no target: name a server with `fab -H user@host TASK` or `fab TASK --target NAME`"
        + (f" (targets: {targets})" if targets else "")
    )


# Invoke's config levels above the collection's (where fabfile.py puts config/*.yaml).
LEVELS = ("_system", "_user", "_project", "_env", "_runtime", "_overrides", "_modifications")


def explicit_keys(config) -> set[str]:
    """The `cynow` keys some level above the defaults sets: what the user said, even when it
    is the guide's value (tasks/discovery.py never replaces those)."""
    keys: set[str] = set()
    for level in LEVELS:
        data = getattr(config, level, None)
        section = data.get("cynow") if isinstance(data, dict) else None
        if isinstance(section, dict):
            keys |= set(section) - {"target", "targets"}
    return keys


def settings_for(c, target: str | None) -> Settings:
    return resolve(c.config.get("cynow", {}), target, explicit_keys(c.config))


def allowed_networks(settings: Settings) -> list[ipaddress._BaseNetwork]:
    """Networks a run may connect to: settings plus CYNOW_OPS_ALLOWED_NETWORKS (tests set it)."""
    names = list(settings.allowed_networks)
    names += [n for n in os.environ.get(ALLOWED_NETWORKS_ENV, "").split(",") if n.strip()]
    try:
        return [ipaddress.ip_network(n.strip(), strict=False) for n in names]
    except ValueError as e:
        raise ConfigError(f"config: {ALLOWED_NETWORKS_ENV} has a bad network ({e}); use CIDR")


def check_address(host: str, port: int, networks: list) -> None:
    """Refuse, before any packet is sent, a host that resolves outside the allowed networks."""
    if not networks:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ConnectError(f"cannot resolve {host}: {e.strerror}; check the host name")
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if not any(ip in net for net in networks):
            allowed = ", ".join(str(n) for n in networks)
            raise ConnectError(
                f"refusing to connect to {host} ({ip}): outside the allowed networks {allowed}"
            )


def _known_hosts_files(conn: Connection, settings: Settings) -> tuple[list[str], list[str]]:
    """(user files, global files) as OpenSSH would read them for this host."""
    cfg = conn.ssh_config
    user = cfg.get("userknownhostsfile")
    user_files = user.split() if isinstance(user, str) else (user or DEFAULT_USER_KNOWN_HOSTS)
    glob = cfg.get("globalknownhostsfile")
    global_files = glob.split() if isinstance(glob, str) else (glob or DEFAULT_GLOBAL_KNOWN_HOSTS)
    expand = [os.path.expanduser(p) for p in settings.known_hosts + list(user_files)]
    return expand, [os.path.expanduser(p) for p in global_files]


def make_connection(host: str | dict, config, settings: Settings) -> Connection:
    """A Fabric Connection with timeouts and host key verification set; not yet opened."""
    ck = dict(config.connect_kwargs or {})
    if settings.key_filename and not ck.get("key_filename"):
        ck["key_filename"] = [settings.key_filename]
    parts = host if isinstance(host, dict) else {"host": host}
    conn = Connection(**parts, config=config, connect_kwargs=ck)
    if conn.gateway:
        # Fabric opens a ProxyJump/gateway with a client of its own that accepts any host key,
        # and a ProxyCommand sends the connection wherever its command says, past the address
        # guard: refuse both rather than connect unverified or unguarded.
        how = "a ProxyCommand" if isinstance(conn.gateway, str) else "a ProxyJump/gateway"
        raise ConfigError(
            f"{describe(conn)} is reached through {how}, which cynow-ops refuses (it cannot "
            "verify the jump or guard where it goes); connect directly, e.g. over a VPN"
        )
    if conn.connect_timeout is None:
        conn.connect_timeout = settings.connect_timeout
    # A server that accepts TCP but never speaks SSH must not hang the run either.
    conn.connect_kwargs.setdefault("banner_timeout", conn.connect_timeout)
    conn.connect_kwargs.setdefault("auth_timeout", conn.connect_timeout)
    user_files, global_files = _known_hosts_files(conn, settings)
    keys, revoked, warnings = load_known_hosts(user_files + global_files)
    for w in warnings:
        _warn_once(w)
    # paramiko checks these before the keys it saved itself; load_system_host_keys() would
    # use HostKeys.load, which cannot read marker lines.
    conn.client._system_host_keys = keys
    ssh = conn.ssh_config
    conn.client.set_missing_host_key_policy(
        HostKeyPolicy(
            accepts_new_keys(settings.host_key_policy, ssh.get("stricthostkeychecking")),
            user_files[0] if user_files else None,
            revoked=revoked,
            hash_hosts=str(ssh.get("hashknownhosts", "")).strip().lower() == "yes",
        )
    )
    return conn


def known_name(conn: Connection) -> str:
    """How known_hosts names this host: `host`, or `[host]:port` off port 22."""
    return conn.host if conn.port == 22 else f"[{conn.host}]:{conn.port}"


def describe(conn: Connection) -> str:
    port = "" if conn.port == 22 else f":{conn.port}"
    return f"{conn.user}@{conn.host}{port}"


def _revoked(where: str, key: paramiko.PKey) -> str:
    return (
        f"REVOKED host key for {where}: {key.get_name()} {fingerprint(key)} is marked @revoked "
        "in known_hosts; do not connect, ask the server's admin for its current key"
    )


def open_connection(conn: Connection, settings: Settings) -> None:
    """Open (guarded, verified) or raise ConnectError with one line saying what to do."""
    where = describe(conn)
    check_address(conn.host, conn.port, allowed_networks(settings))
    try:
        conn.open()
    except RevokedHostKey as e:
        raise ConnectError(_revoked(where, e.key)) from None
    except UnknownHostKey as e:
        kind = e.key.get_name()
        raise ConnectError(
            f"unknown host key for {e.hostname}: {kind} {fingerprint(e.key)}; verify it with the "
            f"server's admin, then add it with `ssh-keyscan -t {kind.replace('ssh-', '')} "
            f"{'' if conn.port == 22 else f'-p {conn.port} '}{conn.host} >> ~/.ssh/known_hosts` "
            "(or opt in once with "
            "FABRIC_CYNOW_HOST_KEY_POLICY=accept-new)"
        ) from None
    except paramiko.BadHostKeyException as e:
        if e.key.asbytes() in getattr(conn.client._policy, "revoked", ()):
            raise ConnectError(_revoked(where, e.key)) from None
        raise ConnectError(
            f"HOST KEY CHANGED for {where}: known {fingerprint(e.expected_key)}, offered "
            f"{fingerprint(e.key)}; this may be an attack. If the server was reinstalled, remove "
            f"the old key with `ssh-keygen -R {known_name(conn)}` and verify the new one"
        ) from None
    except paramiko.AuthenticationException:
        raise ConnectError(
            f"authentication failed for {where}: pass the right key with -i KEYFILE, load it "
            "into ssh-agent, or check the user name"
        ) from None
    except paramiko.ssh_exception.NoValidConnectionsError:
        raise ConnectError(
            f"{where} refused the connection: is sshd running there, and on port {conn.port}? "
            "(give another port as -H user@host:PORT)"
        ) from None
    except TimeoutError:
        raise ConnectError(
            f"cannot reach {where}: no answer within {conn.connect_timeout:g}s (host down, "
            "wrong address or a firewall); raise cynow.connect_timeout if the link is slow"
        ) from None
    except socket.gaierror as e:
        raise ConnectError(
            f"cannot resolve {conn.host}: {e.strerror}; check the host name"
        ) from None
    except paramiko.SSHException as e:
        transport = conn.client.get_transport()
        # paramiko reports a silent port as "No existing session"; no banner is the real story.
        if "banner" in str(e) or (transport is not None and not transport.remote_version):
            raise ConnectError(
                f"cannot reach {where}: the port answered but no SSH server spoke within "
                f"{conn.connect_timeout:g}s; is port {conn.port} really sshd?"
            ) from None
        raise ConnectError(f"ssh to {where} failed: {e or type(e).__name__}") from None
    except (OSError, EOFError) as e:
        raise ConnectError(f"ssh to {where} failed: {e or type(e).__name__}") from None
