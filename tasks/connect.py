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
from pathlib import Path

import paramiko
from fabric import Connection

from tasks.errors import ConfigError, ConnectError
from tasks.executor import CLI_HOSTS_KEY
from tasks.settings import Settings, cli_host, host_spec, resolve

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


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Refuse unknown keys; with accept-new, trust a first key and record it (never a changed one).

    A *changed* key never reaches this policy: paramiko raises BadHostKeyException for it.
    """

    def __init__(self, accept_new: bool, save_to: str | None):
        self.accept_new, self.save_to = accept_new, save_to

    def missing_host_key(self, client, hostname, key):
        if not self.accept_new or not self.save_to:
            raise UnknownHostKey(hostname, key)
        path = Path(self.save_to)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
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


def settings_for(c, target: str | None) -> Settings:
    return resolve(c.config.get("cynow", {}), target)


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
        # Fabric opens a gateway (ProxyJump) with a client of its own that accepts any host
        # key, outside these checks: refuse rather than connect unverified.
        raise ConfigError(
            f"{describe(conn)} is reached through a ProxyJump/gateway, whose "
            "host key cynow-ops cannot verify; connect directly, or use "
            "ProxyCommand 'ssh -W %h:%p JUMPHOST' (OpenSSH verifies the jump)"
        )
    if conn.connect_timeout is None:
        conn.connect_timeout = settings.connect_timeout
    # A server that accepts TCP but never speaks SSH must not hang the run either.
    conn.connect_kwargs.setdefault("banner_timeout", conn.connect_timeout)
    conn.connect_kwargs.setdefault("auth_timeout", conn.connect_timeout)
    user_files, global_files = _known_hosts_files(conn, settings)
    client = conn.client
    for path in user_files + global_files:
        if os.path.isfile(path):
            client.load_system_host_keys(path)
    accept_new = (
        settings.host_key_policy == "accept-new"
        or str(conn.ssh_config.get("stricthostkeychecking", "")).lower() == "accept-new"
    )
    client.set_missing_host_key_policy(
        HostKeyPolicy(accept_new, user_files[0] if user_files else None)
    )
    return conn


def known_name(conn: Connection) -> str:
    """How known_hosts names this host: `host`, or `[host]:port` off port 22."""
    return conn.host if conn.port == 22 else f"[{conn.host}]:{conn.port}"


def describe(conn: Connection) -> str:
    port = "" if conn.port == 22 else f":{conn.port}"
    return f"{conn.user}@{conn.host}{port}"


def open_connection(conn: Connection, settings: Settings) -> None:
    """Open (guarded, verified) or raise ConnectError with one line saying what to do."""
    where = describe(conn)
    check_address(conn.host, conn.port, allowed_networks(settings))
    try:
        conn.open()
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
