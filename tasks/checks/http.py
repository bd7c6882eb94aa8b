"""Guide step 7: ask for the health URLs through the socket and through nginx; when gunicorn is
down, run it by hand on a temporary socket to tell a broken app from a broken service."""

from __future__ import annotations

import json
import re

from tasks import catalogue, parse, programs, service, tools
from tasks.checks import tools as tools_check
from tasks.checks.base import ROOT, Check, Fact, Facts
from tasks.checks.unit_file import gunicorn_settings
from tasks.discovery import first_allowed
from tasks.remote.gunicorn_argv import NOT_LITERAL
from tasks.settings import Settings, tcp_address
from tasks.shell import batch, join, q, say


def host_header(host: str | None) -> str:
    """curl's Host header option for `health_host`, or "" (curl's own)."""
    return f"-H {q('Host: ' + host)} " if host else ""


# A redirect is followed this many times at most, and only within the site.
MAX_HOPS = 3
# curl's report of one answer: the code, the time and where a redirect points (resolved
# against the URL asked; empty when none).
FORMAT = " %{http_code} %{time_total} loc=%{redirect_url}"


def site_prefixes(scheme: str, host: str | None) -> list[str]:
    """The site as a browser names it (scheme://host, with the scheme's port too): a redirect
    to one of these, or to the address asked, stays on the site. Another host or scheme is
    another site: not followed, and a 3xx is never an answer by itself."""
    if not host:
        return []
    port = 443 if scheme == "https" else 80
    return [f"{scheme}://{host}"] + ([f"{scheme}://{host}:{port}"] if ":" not in host else [])


def ask_function(timeout: float, sites: list[str]) -> str:
    """The shell function `ask VIA URL BASE CURL-ARGS...`: GET BASE+URL with curl, a redirect
    to the same site followed (at most MAX_HOPS), printing `VIA URL CODE SECONDS loc=LOCATION
    hops=N` of the last answer."""
    return "\n".join(
        [
            f"sites={q(' '.join(sites))}",
            "ask() {",
            "  via=$1 url=$2 base=$3; shift 3; path=$url; hops=0",
            "  while :; do",
            f"    r=$(curl -sS -o /dev/null -w {q(FORMAT)} --max-time {timeout:g} "
            "\"$@\" \"$base$path\" 2>&1 | tr '\\n' ' ')",
            "    loc=${r##*loc=}; loc=${loc%% *}; next=",
            '    case "$r" in *" 3"[0-9][0-9]" "[0-9]*" loc="?*) ;; *) break;; esac',
            '    for site in "$base" $sites; do',
            '      case "$loc" in "$site"/*) next=${loc#"$site"};; esac',
            "    done",
            f'    [ -n "$next" ] && [ "$hops" -lt {MAX_HOPS} ] || break',
            "    path=$next; hops=$((hops+1))",
            "  done",
            '  printf \'%s %s %s hops=%s\\n\' "$via" "$url" "$r" "$hops"',
            "}",
        ]
    )


def straight_to_gunicorn(
    socket: str, host: str | None = None, scheme: str = "http"
) -> tuple[str, str]:
    """(base URL, curl's arguments) to ask gunicorn itself: over its unix socket, or its TCP
    HOST:PORT. Host is `host` (health_host), else localhost either way; behind an HTTPS site,
    X-Forwarded-Proto says so as nginx would (else Django redirects to https, another site)."""
    proto = f"-H {q('X-Forwarded-Proto: https')} " if scheme == "https" else ""
    if tcp_address(socket):
        return q("http://" + socket), f"{host_header(host or 'localhost')}{proto}".rstrip()
    return q("http://localhost"), f"{host_header(host)}{proto}--unix-socket {q(socket)}"


def nginx_address(port: int) -> str:
    """Shell lines setting $addr to the address nginx listens on for `port` (else its first),
    from the listening sockets (ss, or /proc without it); `nginx_addr=` says it, or
    `nginx_unlisted` when no listing could be made (not "nginx listens nowhere")."""
    return "\n".join(
        [
            f"if tcp=$({tools.listing('tcp')}); then",
            "  nginx=$(printf '%s\\n' \"$tcp\" | awk '/\"nginx\"/ {print $4}')",
            f"  addr=$(printf '%s\\n' \"$nginx\" | grep -E ':{port}$' | head -n1)",
            '  [ -n "$addr" ] || addr=$(printf \'%s\\n\' "$nginx" | head -n1)',
            '  case "$addr" in 0.0.0.0:*|\\*:*|\\[::\\]:*) addr=127.0.0.1:${addr##*:};; esac',
            '  echo "nginx_addr=$addr"',
            "else addr=; echo nginx_unlisted; fi",
        ]
    )


def python_ask(s: Settings, scheme: str) -> str:
    """The health requests without curl (tasks/remote/http_get.py): the venv's python as the
    service (its user, never root), nginx's address on stdin; lenient, as a look must be."""
    spec = {
        "socket": s.socket,
        "urls": list(s.health_urls),
        "timeout": s.http_timeout,
        "host": s.health_host,
        "scheme": scheme,
        "sites": site_prefixes(scheme, s.health_host),
        "hops": MAX_HOPS,
    }
    run = join(s.python, "-I", "-B", "-c", programs.source("http_get"), json.dumps(spec))
    return service.as_service(s.gunicorn_unit, s.app_user, run, strict=False)


def http_script(
    socket: str,
    urls: list[str],
    timeout: float,
    host: str | None = None,
    scheme: str = "http",
    without_curl: str = "",
) -> str:
    """Step 7: each health URL straight to gunicorn (its unix socket or TCP HOST:PORT), and
    through nginx on the address nginx listens on (production binds 0.0.0.0, the lab
    127.0.0.x): on 443 with HTTPS when the site is served there (curl -k: the certificate is
    not checked against a public CA), else 80. Asked as a browser asks: a redirect within the
    site is followed (ask_function). `without_curl`: the command (python_ask) run instead
    when the server has no curl, nginx's address on its stdin."""
    lines = [nginx_address(443 if scheme == "https" else 80)]
    base, args = straight_to_gunicorn(socket, host, scheme)
    insecure = "-k " if scheme == "https" else ""
    asks = [ask_function(timeout, site_prefixes(scheme, host))]
    for url in urls:
        asks.append(f"ask socket {q(url)} {base} {args}")
        asks.append(
            f'if [ -n "$addr" ]; then ask nginx {q(url)} "{scheme}://$addr" '
            f"{insecure}{host_header(host)}".rstrip()
            + f"; else {say('nginx', url, 'none no-listener')}; fi"
        )
    if not without_curl:
        return "\n".join(lines + asks)
    return "\n".join(
        [
            *lines,
            "if command -v curl >/dev/null 2>&1; then",
            *asks,
            "else",
            f"printf '%s\\n' \"$addr\" | {without_curl}",
            "fi",
        ]
    )


def manual_run(project_dir: str, venv: str, wsgi: str, url: str, seconds: float = 15) -> str:
    """When gunicorn is down: start it by hand on a temporary socket for a few seconds, ask it
    for a page, stop it (by its PID) and remove the socket. Tells a broken app from a broken
    service setup."""
    run = "\n".join(
        [
            f"cd {q(project_dir)} || exit 90",
            "tmp=$(mktemp -d /tmp/cynow-diagnose.XXXXXX)",
            # An empty config of its own: gunicorn would read ./gunicorn.conf.py from the
            # checkout, where `daemon = True` would let it escape the timeout and outlive us.
            ': >"$tmp/none.py"',
            f"PYTHONDONTWRITEBYTECODE=1 timeout {seconds:g} {q(venv + '/bin/gunicorn')} "
            '--config "$tmp/none.py" --workers 1 --graceful-timeout 1 '
            f'--bind "unix:$tmp/g.sock" {q(wsgi)} >"$tmp/log" 2>&1 &',
            "pid=$!",
            'i=0; while [ $i -lt 100 ] && [ ! -S "$tmp/g.sock" ] && kill -0 $pid 2>/dev/null; do '
            "sleep 0.05; i=$((i+1)); done",
            'if [ -S "$tmp/g.sock" ]; then',
            f"  http=$(curl -sS -o /dev/null -w '%{{http_code}}' --max-time 10 "
            f'--unix-socket "$tmp/g.sock" {q("http://localhost" + url)} 2>&1)',
            "  kill -TERM $pid 2>/dev/null",
            "else http=none; fi",
            "wait $pid; code=$?",
        ]
    )
    # The results are read after the run, so the gunicorn's log (the app's text) is a part of
    # its own and cannot pass for them.
    report = batch(
        {
            "result": 'printf \'manual_http=%s\\nmanual_exit=%s\\n\' "$http" "$code"',
            "log": 'tail -n 40 "$tmp/log"',
        }
    )
    return "\n".join([run, report, 'rm -rf "$tmp"'])


def http_command(s: Settings, _facts=None) -> str:
    scheme = s.health_scheme or "http"
    return http_script(
        s.socket, s.health_urls, s.http_timeout, s.health_host, scheme, python_ask(s, scheme)
    )


def needs_manual_run(f: Facts, s: Settings) -> bool:
    """The by-hand run only when the service's gunicorn cannot answer."""
    g = f.units.get(s.gunicorn_unit, {})
    running = g.get("ActiveState") == "active" and g.get("SubState") == "running"
    answered = any(r.get("code") for r in f.http.get("socket", {}).values())
    return not (running and answered)


def served_app(facts: Facts, s: Settings) -> str:
    """The WSGI app the service's gunicorn serves (ExecStart's, else GUNICORN_CMD_ARGS's or the
    config file's wsgi_app, when it is a literal); the configured `wsgi` only when nobody
    says. The by-hand run must start that one: a unit naming an app that does not load is
    the very case it is there to show."""
    app = gunicorn_settings(facts, s).get("wsgi_app", (None,))[0]
    return app if isinstance(app, str) and app and app != NOT_LITERAL else s.wsgi


def manual_command(s: Settings, facts: Facts) -> str | None:
    if not needs_manual_run(facts, s) or tools_check.not_read(facts, "curl"):
        return None
    url = s.health_urls[0] if s.health_urls else s.url_prefix
    # As the service runs: its user and environment (EnvironmentFile= too), or the app may
    # fail here for a reason the service does not have.
    run = manual_run(s.project_dir, s.venv, served_app(facts, s), url)
    return service.as_service(s.gunicorn_unit, s.app_user, run, strict=False)


_CODE = re.compile(r"(?:^|\s)(\d{3}) (\d+\.\d+)(?: loc=(\S*))?\s*$")
_HOPS = re.compile(r"\s*hops=(\d+)\s*$")
_CURL_ERR = re.compile(r"(?:curl: \(\d+\)|python:) (.*?)(?=\s\d{3} \d+\.\d+(?: loc=\S*)?\s*$|$)")


def parse_reply(text: str) -> dict:
    """One `ask` report: the last answer's code and time, where a 3xx pointed (`location`)
    and how many redirects were followed to get there (`hops`)."""
    # curl names "localhost port 80" even when it tried the unix socket: drop that part.
    text = re.sub(r"Failed to connect to localhost port \d+ after \d+ ms: ", "", text)
    hops = _HOPS.search(text)
    text = text[: hops.start()] if hops else text
    m = _CODE.search(text)
    code = int(m.group(1)) if m else 0
    err = _CURL_ERR.search(text)
    return {
        "code": code,
        "seconds": float(m.group(2)) if m else None,
        "error": err.group(1).strip() if err else ("" if code else text.strip()),
        "location": (m.group(3) or "") if m else "",
        "hops": int(hops.group(1)) if hops else 0,
    }


def parse_http(stdout: str, _s=None) -> dict:
    out: dict = {"socket": {}, "nginx": {}, "nginx_addr": ""}
    for line in stdout.splitlines():
        if line.startswith("nginx_addr="):
            out["nginx_addr"] = line.split("=", 1)[1]
            continue
        if line == "nginx_unlisted":
            out["nginx_unlisted"] = True
            continue
        via, _, rest = line.partition(" ")
        if via in ("socket", "nginx"):
            url, _, reply = rest.partition(" ")
            out[via][url] = (
                parse_reply(reply)
                if reply != "none no-listener"
                else {"code": 0, "seconds": None, "error": "nginx listens on no TCP port"}
            )
    return out


def parse_manual(parts: dict, _s=None) -> dict:
    kv = parse.key_values(parts["result"].text)
    raw = kv.get("manual_http", "none")
    return {
        "http": int(raw) if raw.isdigit() else 0,
        "http_raw": raw,
        "exit": kv.get("manual_exit", ""),
        "log": parts["log"].text.splitlines(),
    }


FACTS = [
    Fact("http", http_command, parse_http, identity=ROOT, alone=True),
    Fact(
        "manual",
        manual_command,
        parse_manual,
        identity=ROOT,  # tasks/service.py drops to the unit's user
        framed=True,
        timeout=60,
        second=True,
    ),
]


def ok_code(code: int) -> bool:
    """Healthy, as a browser sees it: a page (2xx). A redirect left at the end (to another
    site, or past MAX_HOPS) is not one."""
    return 200 <= code < 300


def manual_ok(manual: dict) -> bool:
    """The by-hand run answers at all as an app does (a redirect too: a login page, a
    missing slash): Django loads and serves."""
    return 200 <= manual.get("http", 0) < 400


# What Django answers a Host header not in ALLOWED_HOSTS (DisallowedHost): the page is fine,
# the question was not; said where a 400 is shown.
BAD_HOST = " (Django's answer to a Host not in ALLOWED_HOSTS? set health_host)"


def describe(reply: dict) -> str:
    if reply.get("code"):
        said = (
            f"{reply['code']} in {reply['seconds']:.2f}s"
            if reply.get("seconds") is not None
            else str(reply["code"])
        )
        hops = reply.get("hops") or 0
        if 300 <= reply["code"] < 400:
            why = f"after {hops} redirects" if hops >= MAX_HOPS else "another site: not followed"
            said += f" to {reply.get('location') or '?'} ({why}; a redirect is not a page)"
        elif hops:
            said += f" after {hops} redirect(s) within the site"
        return said + (BAD_HOST if reply["code"] == 400 else "")
    return reply.get("error") or "no answer"


def _via(facts: Facts, via: str, check: Check) -> list:
    replies = facts.http.get(via, {})
    if not replies:
        return [check.skip("not asked")]
    ev = [f"GET {url} -> {describe(r)}" for url, r in replies.items()]
    bad = [url for url, r in replies.items() if not ok_code(r.get("code", 0))]
    if bad:
        if any(replies[u].get("code") == 400 for u in bad) and (name := allowed_name(facts)):
            ev.append(f"Django's ALLOWED_HOSTS allows {name}: set health_host: {name}")
        return [check.fail("; ".join(e for e in ev if "-> 2" not in e), ev)]
    return [check.ok(", ".join(ev), ev)]


def allowed_name(facts: Facts) -> str:
    """The first name Django's ALLOWED_HOSTS (as the probe read it) allows by itself: the
    Host a browser that works asks with. "" when it allows any, or said none."""
    return first_allowed((facts.probe or {}).get("allowed_hosts") or [])


def nginx_failed(facts: Facts) -> bool:
    replies = facts.http.get("nginx", {})
    return any(not ok_code(r.get("code", 0)) for r in replies.values())


def evaluate(facts: Facts, s: Settings) -> list:
    # Without curl the pages were asked by the venv's python (python_ask): the same replies;
    # none at all (that python failed too) is "not asked", never an answer.
    out = _via(facts, "socket", Check("http.socket", 7, "request through the socket", ("http",)))
    addr = facts.http.get("nginx_addr") or "?"
    if facts.http.get("nginx_unlisted"):
        # No listing of nginx's address was made: no address is not "no nginx".
        out.append(
            Check("http.nginx", 7, "request through nginx", ("http",)).skip(
                "not read: neither ss nor /proc listed nginx's address"
            )
        )
    else:
        out += _via(
            facts, "nginx", Check("http.nginx", 7, f"request through nginx ({addr})", ("http",))
        )
    manual = Check("http.manual", 7, "gunicorn run by hand", reads=("manual",))
    m = facts.manual
    if m is None and needs_manual_run(facts, s) and tools_check.not_read(facts, "curl"):
        out.append(manual.skip(tools_check.not_read(facts, "curl") or ""))
    elif m is None:
        out.append(manual.skip("not needed: the service's gunicorn answers"))
    elif manual_ok(m):
        out.append(
            manual.ok(
                f"answers {m['http']} on a temporary socket: Django is fine, the "
                "service setup is not",
                m["log"][-3:],
            )
        )
    else:
        tail = [ln for ln in m["log"] if ln.strip()][-8:]
        said = [x for x in catalogue.match_lines(m["log"]) if x.entry.key != "worker_boot"]
        out.append(
            manual.fail(
                "fails too: Django itself is broken"
                + (f" ({said[-1].entry.key}: {said[-1].line.strip()[-80:]})" if said else ""),
                tail,
            )
        )
    return out
