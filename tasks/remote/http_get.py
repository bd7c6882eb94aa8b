# The health requests without curl: run as the service runs (tasks/service.py: its user, never
# root) with the venv's python, `python -I -B -c SOURCE SPEC`; SPEC is JSON from
# tasks/checks/http.py (socket, urls, timeout, host, scheme, sites, hops), and stdin's one line
# is nginx's address (found as root, possibly empty). The standard library only. Each answer is
# printed as curl's `ask` prints it, `VIA URL CODE SECONDS loc=LOCATION hops=N`, so one parser
# reads both: asked as a browser asks, a redirect followed only within the site, HTTPS without
# checking the certificate against a public CA (as curl -k).
import http.client
import json
import socket
import ssl
import sys
import time
from urllib.parse import urljoin, urlsplit


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def connection(target, scheme, timeout):
    """target: a unix socket's path, or HOST:PORT."""
    if target.startswith("/"):
        return UnixConnection(target, timeout)
    if scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # as curl -k: the page is judged, not the certificate
        return http.client.HTTPSConnection(target, timeout=timeout, context=context)
    return http.client.HTTPConnection(target, timeout=timeout)


def get_once(target, scheme, path, headers, timeout):
    """(code, seconds, Location) of one GET."""
    t0 = time.monotonic()
    conn = connection(target, scheme, timeout)
    try:
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        return r.status, time.monotonic() - t0, r.getheader("Location") or ""
    finally:
        conn.close()


def ask(via, url, target, base, scheme, headers, spec):
    """One URL as curl's `ask`: the last answer, a redirect within the site followed."""
    path, hops = url, 0
    while True:
        try:
            code, seconds, loc = get_once(target, scheme, path, headers, spec["timeout"])
        except Exception as e:  # the reply a parser reads, not a traceback
            return f"{via} {url} python: {type(e).__name__}: {e} 000 0.000000 loc= hops={hops}"
        loc = urljoin(base + path, loc) if loc and 300 <= code < 400 else ""
        nxt = next(
            (loc[len(site) :] for site in [base] + spec["sites"] if loc.startswith(site + "/")),
            "",
        )
        if not nxt or hops >= spec["hops"]:
            return f"{via} {url} {code:03d} {seconds:.6f} loc={loc} hops={hops}"
        path, hops = nxt, hops + 1


def main(spec, nginx_addr):
    host, scheme = spec.get("host"), spec["scheme"]
    sock = spec["socket"]
    direct = {"Host": host or "localhost"}
    if scheme == "https":
        direct["X-Forwarded-Proto"] = "https"  # as nginx would say it
    base = "http://localhost" if sock.startswith("/") else "http://" + sock
    out = []
    for url in spec["urls"]:
        out.append(ask("socket", url, sock, base, "http", direct, spec))
        if nginx_addr:
            headers = {"Host": host or nginx_addr}
            out.append(
                ask("nginx", url, nginx_addr, f"{scheme}://{nginx_addr}", scheme, headers, spec)
            )
        else:
            out.append(f"nginx {url} none no-listener")
    return out


def address(text):
    """The address root found (ss or /proc): HOST:PORT or [V6]:PORT, else ""."""
    try:
        return text if text and urlsplit("//" + text).port else ""
    except ValueError:
        return ""


if __name__ == "__main__":
    addr = address(sys.stdin.readline().strip())
    print("\n".join(main(json.loads(sys.argv[1]), addr)))
