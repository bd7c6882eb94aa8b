from tasks.checks import nginx
from tests.unit.checks.conftest import captured


def test_nginx_location_proxy_and_headers():
    n = captured("healthy_lab", nginx.FACTS[0])
    assert n["ok"] and "/etc/nginx/sites-enabled/cynow" in n["enabled"]
    block = nginx.location_block(n["dump"], "/cynow/")
    assert nginx.proxy_socket(block)[0] == "/home/cynow/cynow/gunicorn.sock"
    assert set(nginx.GUIDE_HEADERS) <= set(nginx.headers(block))
    # /cynow/static/ is a different location, not mistaken for /cynow/
    assert "alias" not in block


def test_nginx_emerg_lines_are_the_test_result():
    n = captured("nginx_config_invalid", nginx.FACTS[0])
    assert not n["ok"]
    assert any("[emerg]" in ln and "sites-enabled/cynow" in ln for ln in n["test"])
