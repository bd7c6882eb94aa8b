"""tasks/guide.py: the update sequence, printed for a person and run by `fab repair`."""

from tasks import app, guide
from tasks.settings import resolve

S = resolve({"requirements": "requirements/prod.txt"})


def test_what_repair_runs_is_the_update_sequence_but_the_restart_in_order():
    assert guide.UPDATE[-1] == "restart"
    assert guide.as_app(S) == [
        "cd /home/cynow/cynow && git pull --ff-only origin main",
        app.pip_install(S.project_dir, S.venv, "requirements/prod.txt"),
        app.manage(S.project_dir, S.python, "migrate", "--noinput"),
        app.manage(S.project_dir, S.python, "collectstatic", "--noinput"),
    ]


def test_the_printed_update_names_the_same_arguments():
    printed = guide.update_by_hand(S)
    assert len(printed) == len(guide.UPDATE)
    for ran, shown in zip(guide.as_app(S), printed[:-1], strict=True):
        # The same command after `cd DIR && ` / `sudo -u USER`: one spelling of each step.
        tail = ran.split(" && ", 1)[1].replace(" -q --disable-pip-version-check", "")
        assert shown.endswith(tail), (ran, shown)
