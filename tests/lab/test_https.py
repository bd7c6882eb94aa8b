"""A site nginx serves over HTTPS on 443, its port 80 only redirecting there, as production
sites are: with -H alone the health requests go to 443 with HTTPS (curl -k: the certificate, a
self-signed one made at test time with the host's own openssl, is not verified against a
public CA), so the site is judged by its pages, not by port 80's redirect, which is never
healthy by itself."""

from __future__ import annotations

import shlex

import pytest

from tests.lab.helpers import fab_json, lab_args, push_commit

pytestmark = pytest.mark.lab

SITE = "/etc/nginx/sites-available/cynow"


def tls_site(text: str, address: str) -> str:
    """The lab's site moved to 443 with TLS, and a server on 80 that redirects to it."""
    moved = text.replace(
        f"listen {address}:80;",
        f"listen {address}:443 ssl;\n    ssl_certificate /etc/nginx/cynow.crt;\n"
        "    ssl_certificate_key /etc/nginx/cynow.key;",
    )
    assert moved != text, text
    return moved + (
        f"\nserver {{\n    listen {address}:80;\n    server_name _;\n"
        "    return 301 https://$host$request_uri;\n}\n"
    )


def test_an_https_site_is_asked_on_443_and_port_80s_redirect_is_not_an_answer(fresh_host):
    a = fresh_host.address
    site = fresh_host.sh(f"cat {SITE}").stdout
    fresh_host.sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=cynow.lab "
        "-keyout /etc/nginx/cynow.key -out /etc/nginx/cynow.crt 2>/dev/null && "
        f"printf %s {shlex.quote(tls_site(site, a))} > {SITE} && "
        "nginx -t && systemctl reload nginx"
    )
    # Port 80 only redirects: asked there, the site would have no page to judge.
    code = fresh_host.sh(f"curl -s -o /dev/null -w '%{{http_code}}' http://{a}/cynow/").stdout
    assert code == "301"
    doc, r = fab_json(*lab_args(fresh_host), "diagnose", "--target", "lab")
    assert doc["verdict"]["cause"] == "healthy", (doc["verdict"], r.stderr[-2000:])
    assert doc["discovered"]["health_scheme"] == {
        "value": "https",
        "source": "nginx's listen 443",
    }
    nginx = next(c for c in doc["checks"] if c["id"] == "http.nginx")
    assert nginx["status"] == "ok" and f"{a}:443" in nginx["title"], nginx
    push_commit(fresh_host, {"README": "over https\n"}, "docs: over https")
    doc, r = fab_json(*lab_args(fresh_host), "deploy", "--target", "lab")
    assert doc["result"] == "deployed", r.stdout[-3000:] + r.stderr[-2000:]
    # Told to ask over plain http, step 7 meets port 80's redirect to https, another site's
    # scheme: not followed, and a 3xx is not healthy by itself.
    doc, r = fab_json(
        *lab_args(fresh_host),
        "diagnose",
        "--target",
        "lab",
        env={"FABRIC_CYNOW_HEALTH_SCHEME": "http"},
    )
    nginx = next(c for c in doc["checks"] if c["id"] == "http.nginx")
    assert nginx["status"] == "fail" and "301" in nginx["summary"], nginx
    assert "another site: not followed; a redirect is not a page" in nginx["summary"]
    assert f"to https://{a}/cynow/" in nginx["summary"]
