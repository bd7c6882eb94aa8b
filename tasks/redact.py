"""Secrets out of what is shown: command lines and unit lines go into reports and JSON, which are
pasted into tickets and chats, and a `-e SECRET_KEY=...` in gunicorn's ExecStart would go with
them. Names stay (they are what the operator needs to see), values become `<redacted>`.

Pure functions; nothing here reads the server. `redact_argv` works on an argument list (the
unit's ExecStart as systemd parsed it); `redact_text` on a line of text (`ps`'s args column, a
unit file's line), split into words as a shell would, quotes kept.
"""

from __future__ import annotations

import re

REDACTED = "<redacted>"

# A variable or option whose value is a secret: SECRET_KEY, DJANGO_SECRET_KEY, DB_PASSWORD,
# API_TOKEN, AWS_SECRET_ACCESS_KEY, SENTRY_DSN, DATABASE_URL...
_SECRET = re.compile(r"SECRET|KEY|TOKEN|PASS|CREDENTIAL|DSN|DATABASE_URL")
# An option that takes its secret as the next word (`--password hunter2`): one whose name ends
# in one of these, so a flag such as `--no-password` or `--keyfile` does not eat the next word.
_SECRET_OPTION = re.compile(r"(PASSWORD|PASSWD|PASS|TOKEN|SECRET|SECRET_KEY|API_KEY|DSN)$")
# gunicorn's `-e/--env NAME=VALUE`: every value, whatever its name (that is what it is for).
_ENV_OPTIONS = ("-e", "--env")
_ASSIGNMENT = re.compile(r"(?P<q>[\"']?)(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)", re.S)
_OPTION = re.compile(r"(?P<opt>--?[A-Za-z][A-Za-z0-9_-]*)=(?P<value>.*)", re.S)
# user:password@ in a URL (postgres://app:pw@db/x); the user name stays.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*):[^\s@/]+@")
# A word as a shell reads it: quoted spans kept whole (`Environment="A=1 B=2"` is one word).
_WORD = re.compile(r"""(?:[^\s'"]+|'[^']*'|"[^"]*"|['"])+""")


def secret_name(name: str) -> bool:
    """A variable or option name that holds a secret."""
    return bool(_SECRET.search(name.upper().lstrip("-").replace("-", "_")))


def _takes_secret(word: str) -> bool:
    """An option whose next word is its secret value (`--password hunter2`)."""
    name = word.lstrip("-").upper().replace("-", "_")
    flag = name.startswith("NO_")  # --no-password: a switch, the next word is not its value
    return (
        word.startswith("-") and "=" not in word and not flag and bool(_SECRET_OPTION.search(name))
    )


def _env_value(word: str) -> str:
    """NAME=VALUE after -e/--env: the name stays."""
    m = _ASSIGNMENT.fullmatch(word)
    return f"{m['q']}{m['name']}={REDACTED}{m['q']}" if m else word


def _quoted(word: str) -> str | None:
    """The inside of a word quoted whole ("A=1 B=2"), else None."""
    if len(word) > 1 and word[0] in "'\"" and word[-1] == word[0]:
        return word[1:-1]
    return None


def redact_word(word: str) -> str:
    """One word on its own: NAME=VALUE with a secret name, --secret-option=VALUE,
    --env=NAME=VALUE, -eNAME=VALUE, and a URL's password; a word holding several (quoted, or
    one argument with spaces) word by word."""
    word = _URL_PASSWORD.sub(rf"\g<head>:{REDACTED}@", word)
    if word.startswith("--env="):
        return "--env=" + _env_value(word[len("--env=") :])
    if word.startswith("-e") and not word.startswith("--") and "=" in word:
        return "-e" + _env_value(word[2:])
    option = _OPTION.fullmatch(word)
    if option:
        if secret_name(option["opt"]):
            return f"{option['opt']}={REDACTED}"
        return f"{option['opt']}={redact_word(option['value'])}"
    m = _ASSIGNMENT.fullmatch(word)
    if m and secret_name(m["name"]):
        return f"{m['q']}{m['name']}={REDACTED}{m['q']}"
    inside = _quoted(word)
    if inside is not None:
        return word[0] + redact_text(inside) + word[0]
    if m:
        # Environment=SECRET_KEY=... : the value may itself be an assignment.
        return f"{m['q']}{m['name']}={redact_word(m['value'])}"
    return redact_text(word) if len(_WORD.findall(word)) > 1 else word


def redact_argv(argv: list[str]) -> list[str]:
    """An argument list with every secret value replaced, names and everything else kept."""
    out, after = [], None
    for word in argv:
        if after == "env":
            out.append(_env_value(word))
        elif after == "secret" and not word.startswith("-"):
            out.append(REDACTED)
        else:
            out.append(redact_word(word))
        after = "env" if word in _ENV_OPTIONS else "secret" if _takes_secret(word) else None
    return out


def redact_text(text: str) -> str:
    """A line of text (ps's args, a unit file's line) with every secret value replaced; the
    spacing between words is kept."""
    words = [m.group() for m in _WORD.finditer(text)]
    redacted = iter(redact_argv(words))
    return _WORD.sub(lambda _m: next(redacted), text)
