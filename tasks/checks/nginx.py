"""Guide step 4: nginx's config: valid, site enabled, proxying to the socket gunicorn binds."""

from __future__ import annotations

import re

from tasks.checks import unit_file
from tasks.checks.base import OK, ROOT, WARN, Check, Fact, Facts, Finding
from tasks.guide import sudo
from tasks.settings import Settings, tcp_address
from tasks.shell import batch, q

GUIDE_HEADERS = ["Host", "X-Real-IP", "X-Forwarded-For", "X-Forwarded-Proto"]


def nginx_command(s: Settings, _facts=None, sites_enabled="/etc/nginx/sites-enabled") -> str:
    """`nginx -T` (the test and the whole effective config), the site file, and which sites
    are enabled."""
    return batch(
        {
            "test": "nginx -T 2>&1",
            "site": f"cat {q(s.nginx_site)} 2>&1",
            "enabled": f'for f in {q(sites_enabled)}/*; do [ -e "$f" ] || [ -L "$f" ] || continue; '
            'printf \'%s -> %s\\n\' "$f" "$(readlink -f "$f")"; done',
        }
    )


def parse_nginx(parts: dict, _s=None) -> dict:
    dump, code = parts["test"]
    head = dump.split("\n# configuration file ", 1)[0]
    # nginx -t's verdict lines, and errors in the error_log format ("... [emerg] 100#100: ...").
    test = [
        ln
        for ln in head.splitlines()
        if ln.startswith("nginx: ") or re.search(r"\[(emerg|alert|crit)\]", ln)
    ]
    enabled = {}
    for line in parts["enabled"].text.splitlines():
        link, _, target = line.partition(" -> ")
        if link:
            enabled[link] = target
    return {
        "ok": code == 0,
        "test": test,
        "dump": dump,
        "site": parts["site"].text,
        "enabled": enabled,
    }


FACTS = [Fact("nginx", nginx_command, parse_nginx, identity=ROOT, framed=True)]


def _strip_comments(text: str) -> str:
    return "\n".join(ln.split("#", 1)[0] for ln in text.splitlines())


def location_block(config: str, prefix: str) -> str | None:
    """The body of the first `location PREFIX {…}` (braces matched), comments removed."""
    text = _strip_comments(config)
    m = re.search(r"location\s+(?:\^~\s+)?" + re.escape(prefix) + r"\s*\{", text)
    if not m:
        return None
    depth, i = 1, m.end()
    while i < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[m.end() : i - 1]


def proxy_socket(block: str) -> tuple[str | None, str | None]:
    """(where it connects: a unix socket's path or TCP HOST:PORT, raw proxy_pass value) of a
    location block. An upstream name (`http://app`) is neither: None."""
    m = re.search(r"proxy_pass\s+([^;]+);", block)
    if not m:
        return None, None
    value = m.group(1).strip()
    s = re.match(r"https?://unix:([^:;\s]+)", value)
    if s:
        return s.group(1), value
    t = re.match(r"https?://([^/\s]+)", value)
    return (t.group(1) if t and tcp_address(t.group(1)) else None), value


def headers(block: str) -> list[str]:
    return re.findall(r"proxy_set_header\s+(\S+)", block)


def evaluate(facts: Facts, s: Settings) -> list:
    n = facts.nginx
    test = Check("nginx.test", 4, "nginx -t")
    if n.get("ok"):
        out = [test.ok("syntax ok, test successful", n.get("test", [])[-2:])]
    else:
        errors = [ln for ln in n.get("test", []) if re.search(r"\[(emerg|alert|crit)\]", ln)]
        errors += [ln for ln in n.get("test", []) if "test failed" in ln]
        ev = errors or n.get("test", []) or [n.get("dump", "").strip()[-300:]]
        out = [
            test.failure(
                "nginx_config_invalid",
                ev,
                [
                    "fix the file and line nginx names above",
                    "sudo nginx -t && sudo systemctl reload nginx",
                ],
                summary=ev[0] if ev else "nginx -t failed",
            )
        ]
    out.append(site_enabled(n, s))
    config = n.get("dump") if n.get("ok") else n.get("site", "")
    block = location_block(config or "", s.url_prefix)
    proxy = Check("nginx.proxy", 4, f"location {s.url_prefix} proxy_pass", reads=("nginx", "units"))
    if block is None:
        out.append(proxy.fail(f"no `location {s.url_prefix}` in the nginx config"))
        return out
    out.append(proxy_target(proxy, block, facts, s))
    missing = [h for h in GUIDE_HEADERS if h not in headers(block)]
    out.append(
        Check("nginx.headers", 4, "proxy headers").result(
            WARN if missing else OK,
            ("missing " + ", ".join(missing)) if missing else "the guide's four headers",
        )
    )
    return out


def site_enabled(n: dict, s: Settings):
    check = Check("nginx.site", 4, "site enabled")
    links = [link for link, target in n.get("enabled", {}).items() if target == s.nginx_site]
    if links:
        return check.ok(f"{links[0]} -> {s.nginx_site}")
    ev = [f"{k} -> {v}" for k, v in n.get("enabled", {}).items()] or ["sites-enabled is empty"]
    site = s.nginx_site.rsplit("/", 1)[-1]
    return check.fail(
        f"{s.nginx_site} is not enabled",
        ev,
        [
            Finding(
                "nginx_config_invalid",
                [f"{s.nginx_site} is not linked from /etc/nginx/sites-enabled"] + ev,
                [
                    sudo("ln", "-s", s.nginx_site, f"/etc/nginx/sites-enabled/{site}"),
                    "sudo nginx -t && sudo systemctl reload nginx",
                ],
            )
        ],
    )


def proxy_target(check: Check, block: str, facts: Facts, s: Settings):
    """Does the location's proxy_pass name the socket the unit binds?"""
    gunicorn = facts.units.get(s.gunicorn_unit, {})
    bind = unit_file.bind_of(
        unit_file.gunicorn_args(unit_file.exec_argv(gunicorn.get("ExecStart", "")))["binds"]
    )
    sock, raw = proxy_socket(block)
    ev = [
        f"nginx: proxy_pass {raw};",
        f"gunicorn: --bind {unit_file.shown(bind)}" if bind else "gunicorn: no --bind",
    ]
    if sock and bind and sock != bind:
        return check.failure(
            "socket_path_mismatch",
            ev,
            [
                f"make both name one address: proxy_pass "
                f"{'http://' + s.tcp if s.tcp else 'http://unix:' + s.socket}; in "
                f"{s.nginx_site} and --bind {unit_file.shown(s.socket)} in {s.gunicorn_unit}",
                "sudo nginx -t && sudo systemctl reload nginx",
                sudo("systemctl", "daemon-reload")
                + " && "
                + sudo("systemctl", "restart", s.gunicorn_unit),
            ],
            summary=f"nginx connects to {sock}, gunicorn binds {bind}",
        )
    if not sock:
        return check.warn(f"proxy_pass {raw} is neither a unix socket nor HOST:PORT", ev)
    return check.ok(f"proxy_pass {unit_file.shown(sock)} = gunicorn's --bind", ev)
