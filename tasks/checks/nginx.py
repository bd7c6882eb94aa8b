"""Guide step 4: nginx's config: valid, site enabled, proxying to the socket gunicorn binds."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
    # ExecStart's --bind, else GUNICORN_CMD_ARGS's, else the config file's: gunicorn's order.
    bind = unit_file.bind_of(unit_file.effective_binds(facts, s))
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


# The effective config as a tree, for the layout (tasks/layout.py): which server block serves
# the URL prefix (its server_name and listen) and where it serves the static URL from. nginx -T
# prints each file once, after a `# configuration file PATH:` line, an include's text in its
# own section rather than in place: each section is parsed alone and server blocks are looked
# for in all of them.
@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None  # None: a simple directive (`listen 80;`)


_TOKEN = re.compile(
    r"""\s+|#[^\n]*|"((?:\\.|[^"\\])*)"|'((?:\\.|[^'\\])*)'|([{};])|([^\s{};"'#]+)"""
)


def parse_config(text: str) -> list[Directive]:
    """nginx's syntax, tolerantly: words and quoted strings, `;` ending a directive, `{}` a
    block; an unbalanced `}` or a missing `;` at the end drops what it cannot place."""
    root: list[Directive] = []
    stack, words = [root], []
    for m in _TOKEN.finditer(text):
        dq, sq, punct, word = m.groups()
        if punct == ";":
            if words:
                stack[-1].append(Directive(words[0], words[1:]))
            words = []
        elif punct == "{":
            d = Directive(words[0] if words else "", words[1:], [])
            stack[-1].append(d)
            stack.append(d.block)
            words = []
        elif punct == "}":
            words = []
            if len(stack) > 1:
                stack.pop()
        elif dq is not None or sq is not None:
            words.append(dq if dq is not None else sq)
        elif word is not None:
            words.append(word)
    return root


def config_sections(dump: str) -> list[str]:
    """nginx -T's files, each one's text (the lines before the first are nginx -t's)."""
    parts = re.split(r"^# configuration file [^\n]*:\n", dump, flags=re.M)
    return parts[1:] if len(parts) > 1 else parts


def server_blocks(dump: str) -> list[Directive]:
    """Every `server { }` of the effective config (an upstream's `server` lines have no block)."""
    found: list[Directive] = []

    def walk(ds):
        for d in ds:
            if d.block is None:
                continue
            if d.name == "server":
                found.append(d)
            else:
                walk(d.block)

    for text in config_sections(dump):
        walk(parse_config(text))
    return found


def serving_location(server: Directive, uri: str) -> Directive | None:
    """The location of a server block that serves `uri` as nginx picks among prefixes: an
    exact `=` match, else the longest prefix (`^~` or none). Regex locations are not
    weighed (nginx tries them after a plain prefix): a server that routes the prefix with a
    regex is read as if it had none."""
    best, length = None, -1
    for d in server.block or []:
        if d.name != "location" or not d.args:
            continue
        if len(d.args) == 2 and d.args[0] == "=":
            if d.args[1] == uri:
                return d
            continue
        prefix = d.args[1] if len(d.args) == 2 and d.args[0] == "^~" else d.args[0]
        if len(d.args) == 1 or d.args[0] == "^~":
            if uri.startswith(prefix) and len(prefix) > length:
                best, length = d, len(prefix)
    return best


def _first(ds: list[Directive] | None, name: str) -> Directive | None:
    return next((d for d in ds or [] if d.name == name and d.block is None), None)


def site_of(dump: str, prefix: str, static_url: str) -> dict:
    """The server blocks whose location for `prefix` proxies (to gunicorn): their server_name
    and listen values, in order; and where the first of them serves `static_url` from:
    {"dir", "how", "location"} (alias: the location's prefix replaced; root: root + URI), or
    None when that location proxies too or names no files."""
    servers = []
    for srv in server_blocks(dump):
        loc = serving_location(srv, prefix)
        if loc is not None and _first(loc.block, "proxy_pass"):
            servers.append(srv)
    names, listens = [], []
    for srv in servers:
        for d in srv.block or []:
            if d.block is None and d.name == "server_name":
                names += [n for n in d.args if n not in names]
            elif d.block is None and d.name == "listen":
                value = " ".join(d.args)
                if value not in listens:
                    listens.append(value)
    if servers and not listens:
        listens = ["80 (nginx's default: no listen)"]
    static = None
    if servers:
        loc = serving_location(servers[0], static_url)
        where = f"location {' '.join(loc.args)}" if loc else ""
        alias = _first(loc.block, "alias") if loc else None
        root = (_first(loc.block, "root") if loc else None) or _first(servers[0].block, "root")
        if loc is not None and _first(loc.block, "proxy_pass") and not alias:
            static = None  # the app serves it (whitenoise...): no directory of nginx's
        elif alias and alias.args:
            # As nginx does: the location's prefix replaced by the alias, literally (an alias
            # without the prefix's trailing slash is a real misconfiguration, kept visible).
            path = alias.args[0] + static_url[len(loc.args[-1]) :]
            static = {"dir": path, "how": "alias", "location": where}
        elif root and root.args:
            path = root.args[0].rstrip("/") + static_url
            static = {"dir": path, "how": "root", "location": where}
    return {"server_name": names, "listen": listens, "static": static}
