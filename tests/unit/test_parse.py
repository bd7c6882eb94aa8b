from pathlib import Path

from tasks import parse
from tasks.info import parse_info

DATA = Path(__file__).parent / "data"


def test_systemctl_show_blocks_real_output():
    units = parse.systemctl_show((DATA / "systemctl_show_three_units.txt").read_text())
    assert units["gunicorn.service"]["ActiveState"] == "active"
    assert units["gunicorn.socket"]["LoadState"] == "not-found"
    assert units["nginx.service"]["UnitFileState"] == "enabled"


def test_key_values_keeps_equals_in_value():
    assert parse.key_values("a=b=c\nnot a pair\nx=\n") == {"a": "b=c", "x": ""}


def test_parse_info_real_output():
    facts = parse_info((DATA / "info_lab1.txt").read_text())
    assert facts["hostname"] == "lab1"
    assert facts["os"].startswith("Debian GNU/Linux 12")
    assert facts["python"].startswith("Python 3.11")
    assert len(facts["commit"]) == 40 and facts["branch"] == "main"
    assert facts["units"]["gunicorn.service"] == {
        "load": "loaded",
        "active": "active",
        "sub": "running",
        "enabled": "enabled",
    }
    assert facts["units"]["gunicorn.socket"]["load"] == "not-found"


def test_packages_a_new_requirements_file_added():
    from tasks import parse

    before = ["Django==4.2.30", "python_dateutil==2.9", "# comment", "-e git+https://x#egg=y"]
    now = ["django==5.0", "Python-Dateutil==2.9", "Markdown==3.7", "zope.interface @ file:///z"]
    assert parse.added_packages(before, now) == ["markdown", "zope-interface"]
    assert parse.frozen_names(["A.b_c==1"]) == {"a-b-c": "A.b_c==1"}
