"""Guide step 4: nginx's config: valid, site enabled, proxying to the socket gunicorn binds."""

from __future__ import annotations

import re

from tasks import parse
from tasks.checks import unit as unit_check
from tasks.checks.base import FAIL, OK, WARN, Facts, Finding, result
from tasks.settings import Settings

GUIDE_HEADERS = ["Host", "X-Real-IP", "X-Forwarded-For", "X-Forwarded-Proto"]


def parse_nginx(stdout: str) -> dict:
    sec = parse.sections(stdout, ["--site--", "--enabled--"])
    dump, _, code = sec[""].rpartition("--nginx-exit=")
    head = dump.split("\n# configuration file ", 1)[0]
    # nginx -t's verdict lines, and errors in the error_log format ("... [emerg] 100#100: ...").
    test = [
        ln
        for ln in head.splitlines()
        if ln.startswith("nginx: ") or re.search(r"\[(emerg|alert|crit)\]", ln)
    ]
    enabled = {}
    for line in sec["--enabled--"].splitlines():
        link, _, target = line.partition(" -> ")
        if link:
            enabled[link] = target
    return {
        "ok": code.strip() == "0",
        "test": test,
        "dump": dump,
        "site": sec["--site--"],
        "enabled": enabled,
    }


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
    """(socket path, raw proxy_pass value) of a location block."""
    m = re.search(r"proxy_pass\s+([^;]+);", block)
    if not m:
        return None, None
    value = m.group(1).strip()
    s = re.match(r"https?://unix:([^:;\s]+)", value)
    return (s.group(1) if s else None), value


def headers(block: str) -> list[str]:
    return re.findall(r"proxy_set_header\s+(\S+)", block)


def evaluate(facts: Facts, s: Settings) -> list:
    n = facts.nginx
    out = []
    if n.get("ok"):
        out.append(
            result(
                "nginx.test",
                4,
                "nginx -t",
                OK,
                "syntax ok, test successful",
                n.get("test", [])[-2:],
            )
        )
    else:
        errors = [ln for ln in n.get("test", []) if re.search(r"\[(emerg|alert|crit)\]", ln)]
        errors += [ln for ln in n.get("test", []) if "test failed" in ln]
        ev = errors or n.get("test", []) or [n.get("dump", "").strip()[-300:]]
        out.append(
            result(
                "nginx.test",
                4,
                "nginx -t",
                FAIL,
                ev[0] if ev else "nginx -t failed",
                ev,
                [
                    Finding(
                        "nginx_config_invalid",
                        ev,
                        [
                            "fix the file and line nginx names above",
                            "sudo nginx -t && sudo systemctl reload nginx",
                        ],
                    )
                ],
            )
        )
    site_enabled = [link for link, target in n.get("enabled", {}).items() if target == s.nginx_site]
    if site_enabled:
        out.append(
            result("nginx.site", 4, "site enabled", OK, f"{site_enabled[0]} -> {s.nginx_site}")
        )
    else:
        ev = [f"{k} -> {v}" for k, v in n.get("enabled", {}).items()] or ["sites-enabled is empty"]
        site = s.nginx_site.rsplit("/", 1)[-1]
        out.append(
            result(
                "nginx.site",
                4,
                "site enabled",
                FAIL,
                f"{s.nginx_site} is not enabled",
                ev,
                [
                    Finding(
                        "nginx_config_invalid",
                        [f"{s.nginx_site} is not linked from /etc/nginx/sites-enabled"] + ev,
                        [
                            f"sudo ln -s {s.nginx_site} /etc/nginx/sites-enabled/{site}",
                            "sudo nginx -t && sudo systemctl reload nginx",
                        ],
                    )
                ],
            )
        )
    config = n.get("dump") if n.get("ok") else n.get("site", "")
    block = location_block(config or "", s.url_prefix)
    gunicorn = facts.units.get(s.gunicorn_unit, {})
    bind = unit_check.unix_bind(
        unit_check.gunicorn_args(unit_check.exec_argv(gunicorn.get("ExecStart", "")))["binds"]
    )
    if block is None:
        out.append(
            result(
                "nginx.proxy",
                4,
                f"location {s.url_prefix} proxy_pass",
                FAIL,
                f"no `location {s.url_prefix}` in the nginx config",
            )
        )
        return out
    sock, raw = proxy_socket(block)
    ev = [
        f"nginx: proxy_pass {raw};",
        f"gunicorn: --bind unix:{bind}" if bind else "gunicorn: no unix --bind",
    ]
    if sock and bind and sock != bind:
        out.append(
            result(
                "nginx.proxy",
                4,
                f"location {s.url_prefix} proxy_pass",
                FAIL,
                f"nginx connects to {sock}, gunicorn binds {bind}",
                ev,
                [
                    Finding(
                        "socket_path_mismatch",
                        ev,
                        [
                            f"make both name one path: proxy_pass http://unix:{s.socket}; in "
                            f"{s.nginx_site} and --bind unix:{s.socket} in {s.gunicorn_unit}",
                            "sudo nginx -t && sudo systemctl reload nginx",
                            f"sudo systemctl daemon-reload && sudo systemctl restart "
                            f"{s.gunicorn_unit}",
                        ],
                    )
                ],
            )
        )
    elif not sock:
        out.append(
            result(
                "nginx.proxy",
                4,
                f"location {s.url_prefix} proxy_pass",
                WARN,
                f"proxy_pass {raw} is not a unix socket",
                ev,
            )
        )
    else:
        out.append(
            result(
                "nginx.proxy",
                4,
                f"location {s.url_prefix} proxy_pass",
                OK,
                f"proxy_pass unix:{sock} = gunicorn's --bind",
                ev,
            )
        )
    missing = [h for h in GUIDE_HEADERS if h not in headers(block)]
    out.append(
        result(
            "nginx.headers",
            4,
            "proxy headers",
            WARN if missing else OK,
            ("missing " + ", ".join(missing)) if missing else "the guide's four headers",
        )
    )
    return out
