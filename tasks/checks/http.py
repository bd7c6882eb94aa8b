"""Guide step 7: ask for the health URLs through the socket and through nginx; when gunicorn is
down, run it by hand on a temporary socket to tell a broken app from a broken service."""

from __future__ import annotations

import re

from tasks import catalogue, parse, service
from tasks.checks import tools as tools_check
from tasks.checks.base import ROOT, Check, Fact, Facts
from tasks.checks.unit_file import gunicorn_settings
from tasks.remote.gunicorn_argv import NOT_LITERAL
from tasks.settings import Settings, tcp_address
from tasks.shell import batch, q, say


def host_header(host: str | None) -> str:
    """curl's Host header option for `health_host`, or "" (curl's own)."""
    return f"-H {q('Host: ' + host)} " if host else ""


def straight_to_gunicorn(socket: str, url: str, host: str | None = None) -> str:
    """curl's arguments for `url` asked of gunicorn itself: over its unix socket, or its TCP
    HOST:PORT. Host is `host` (health_host), else localhost either way, as nginx's
    proxy_set_header would not be."""
    if tcp_address(socket):
        return f"{host_header(host or 'localhost')}{q('http://' + socket + url)}"
    return f"{host_header(host)}--unix-socket {q(socket)} {q('http://localhost' + url)}"


def http_script(socket: str, urls: list[str], timeout: float, host: str | None = None) -> str:
    """Step 7: each health URL straight to gunicorn (its unix socket or TCP HOST:PORT), and
    through nginx on the address nginx listens on (found with ss, since production binds
    0.0.0.0 and the lab 127.0.0.x)."""
    fmt = "%{http_code} %{time_total}"
    lines = [
        "addr=$(ss -tlnpH | awk '/\"nginx\"/ {print $4}' | grep -E ':80$' | head -n1)",
        '[ -n "$addr" ] || addr=$(ss -tlnpH | awk \'/"nginx"/ {print $4; exit}\')',
        'case "$addr" in 0.0.0.0:*|\\*:*|\\[::\\]:*) addr=127.0.0.1:${addr##*:};; esac',
        'echo "nginx_addr=$addr"',
    ]
    for url in urls:
        lines.append(
            f"printf 'socket %s %s\\n' {q(url)} \"$(curl -sS -o /dev/null -w {q(fmt)} "
            f"--max-time {timeout:g} {straight_to_gunicorn(socket, url, host)} "
            f"2>&1 | tr '\\n' ' ')\""
        )
        lines.append(
            f'if [ -n "$addr" ]; then printf \'nginx %s %s\\n\' {q(url)} "$(curl -sS '
            f"-o /dev/null -w {q(fmt)} --max-time {timeout:g} {host_header(host)}"
            f"\"http://$addr\"{q(url)} 2>&1 | tr '\\n' ' ')\"; "
            f"else {say('nginx', url, 'none no-listener')}; fi"
        )
    return "\n".join(lines)


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
    return http_script(s.socket, s.health_urls, s.http_timeout, s.health_host)


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


_CODE = re.compile(r"(?:^|\s)(\d{3}) (\d+\.\d+)\s*$")
_CURL_ERR = re.compile(r"curl: \(\d+\) (.*?)(?=\s\d{3} \d+\.\d+\s*$|$)")


def parse_reply(text: str) -> dict:
    # curl names "localhost port 80" even when it tried the unix socket: drop that part.
    text = re.sub(r"Failed to connect to localhost port \d+ after \d+ ms: ", "", text)
    m = _CODE.search(text)
    code = int(m.group(1)) if m else 0
    err = _CURL_ERR.search(text)
    return {
        "code": code,
        "seconds": float(m.group(2)) if m else None,
        "error": err.group(1).strip() if err else ("" if code else text.strip()),
    }


def parse_http(stdout: str, _s=None) -> dict:
    out: dict = {"socket": {}, "nginx": {}, "nginx_addr": ""}
    for line in stdout.splitlines():
        if line.startswith("nginx_addr="):
            out["nginx_addr"] = line.split("=", 1)[1]
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
    return 200 <= code < 400


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
    hosts = (facts.probe or {}).get("allowed_hosts") or []
    if "*" in hosts:
        return ""
    return next((h.lstrip(".") for h in hosts if h.strip(".") and "*" not in h), "")


def nginx_failed(facts: Facts) -> bool:
    replies = facts.http.get("nginx", {})
    return any(not ok_code(r.get("code", 0)) for r in replies.values())


def evaluate(facts: Facts, s: Settings) -> list:
    cannot = tools_check.not_read(facts, "curl")
    if cannot:
        # Without curl nothing was asked: its error is not the site's answer.
        return [
            Check("http.socket", 7, "request through the socket", ("http",)).skip(cannot),
            Check("http.nginx", 7, "request through nginx", ("http",)).skip(cannot),
            Check("http.manual", 7, "gunicorn run by hand", reads=("manual",)).skip(cannot),
        ]
    out = _via(facts, "socket", Check("http.socket", 7, "request through the socket", ("http",)))
    addr = facts.http.get("nginx_addr") or "?"
    if tools_check.not_read(facts, "ss"):
        # nginx's address is found with ss: without it, no address is not "no nginx".
        out.append(
            Check("http.nginx", 7, "request through nginx", ("http",)).skip(
                tools_check.not_read(facts, "ss")
            )
        )
    else:
        out += _via(
            facts, "nginx", Check("http.nginx", 7, f"request through nginx ({addr})", ("http",))
        )
    manual = Check("http.manual", 7, "gunicorn run by hand", reads=("manual",))
    m = facts.manual
    if m is None:
        out.append(manual.skip("not needed: the service's gunicorn answers"))
    elif ok_code(m["http"]):
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
