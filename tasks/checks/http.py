"""Guide step 7: ask for the health URLs through the socket and through nginx; when gunicorn is
down, run it by hand on a temporary socket to tell a broken app from a broken service."""

from __future__ import annotations

import re

from tasks import catalogue, parse
from tasks.checks.base import FAIL, OK, SKIPPED, Facts, result
from tasks.settings import Settings

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


def parse_http(stdout: str) -> dict:
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


def parse_manual(stdout: str) -> dict:
    sec = parse.sections(stdout, ["--log--"])
    kv = parse.key_values(sec[""])
    raw = kv.get("manual_http", "none")
    return {
        "http": int(raw) if raw.isdigit() else 0,
        "http_raw": raw,
        "exit": kv.get("manual_exit", ""),
        "log": sec["--log--"].splitlines(),
    }


def ok_code(code: int) -> bool:
    return 200 <= code < 400


def describe(reply: dict) -> str:
    if reply.get("code"):
        return (
            f"{reply['code']} in {reply['seconds']:.2f}s"
            if reply.get("seconds") is not None
            else str(reply["code"])
        )
    return reply.get("error") or "no answer"


def _via(facts: Facts, via: str, title: str, step_id: str) -> list:
    replies = facts.http.get(via, {})
    if not replies:
        return [result(step_id, 7, title, SKIPPED, "not asked")]
    ev = [f"GET {url} -> {describe(r)}" for url, r in replies.items()]
    bad = [url for url, r in replies.items() if not ok_code(r.get("code", 0))]
    if bad:
        return [result(step_id, 7, title, FAIL, "; ".join(e for e in ev if "-> 2" not in e), ev)]
    return [result(step_id, 7, title, OK, ", ".join(ev), ev)]


def nginx_failed(facts: Facts) -> bool:
    replies = facts.http.get("nginx", {})
    return any(not ok_code(r.get("code", 0)) for r in replies.values())


def evaluate(facts: Facts, s: Settings) -> list:
    out = _via(facts, "socket", "request through the socket", "http.socket")
    addr = facts.http.get("nginx_addr") or "?"
    out += _via(facts, "nginx", f"request through nginx ({addr})", "http.nginx")
    m = facts.manual
    if m is None:
        out.append(
            result(
                "http.manual",
                7,
                "gunicorn run by hand",
                SKIPPED,
                "not needed: the service's gunicorn answers",
            )
        )
    elif ok_code(m["http"]):
        out.append(
            result(
                "http.manual",
                7,
                "gunicorn run by hand",
                OK,
                f"answers {m['http']} on a temporary socket: Django is fine, the "
                "service setup is not",
                m["log"][-3:],
            )
        )
    else:
        tail = [ln for ln in m["log"] if ln.strip()][-8:]
        said = [x for x in catalogue.match_lines(m["log"]) if x.entry.key != "worker_boot"]
        out.append(
            result(
                "http.manual",
                7,
                "gunicorn run by hand",
                FAIL,
                "fails too: Django itself is broken"
                + (f" ({said[-1].entry.key}: {said[-1].line.strip()[-80:]})" if said else ""),
                tail,
            )
        )
    return out
