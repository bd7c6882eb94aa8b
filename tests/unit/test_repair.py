from tasks import repair
from tasks.settings import resolve

S = resolve({})


def keys(causes, disabled=False):
    actions, by_hand = repair.plan_repairs(causes, S, disabled)
    return [a.key for a in actions], by_hand


def test_order_is_safe_and_each_action_once():
    got, by_hand = keys(
        ["code_outdated", "gunicorn_stopped", "socket_permission_denied", "migrations_pending"]
    )
    assert got == ["permissions", "update", "migrate", "gunicorn"]
    assert by_hand == {}


def test_gunicorn_is_started_last_and_enabled_when_disabled():
    actions, _ = repair.plan_repairs(["gunicorn_stopped"], S, disabled=True)
    (g,) = actions
    assert [c for _, c in g.commands] == [
        "systemctl reset-failed gunicorn.service",
        commands_remove_stale(),
        "systemctl restart gunicorn.service",
        "systemctl enable gunicorn.service",
    ]


def commands_remove_stale():
    from tasks import restart

    return restart.remove_stale_socket(S.socket)


def test_human_causes_are_explained_not_touched():
    got, by_hand = keys(["app_import_error", "gunicorn_stopped"])
    assert got == ["gunicorn"]  # starting it is still right; the code is left alone
    assert "fix the code" in by_hand["app_import_error"]
    got, by_hand = keys(["nginx_config_invalid"])
    assert got == [] and "nginx -t" in by_hand["nginx_config_invalid"]


def test_update_is_fast_forward_only_and_as_the_app_user():
    actions, _ = repair.plan_repairs(["code_outdated"], S, False)
    update = next(a for a in actions if a.key == "update")
    assert update.commands[0] == ("cynow", "cd /home/cynow/cynow && git pull --ff-only origin main")
    assert all(who == "cynow" for who, _ in update.commands)


def test_ask_shows_commands_and_takes_only_yes(monkeypatch, capsys):
    action = repair.Action(
        "migrate",
        "apply pending migrations",
        ["migrations_pending"],
        [("cynow", "cd /x && python manage.py migrate")],
    )
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert repair.ask(action)
    monkeypatch.setattr("builtins.input", lambda prompt: "")
    assert not repair.ask(action)
    assert "python manage.py migrate" in capsys.readouterr().out


def test_repair_installs_the_configured_requirements_as_the_deploy_spells_it():
    from tasks import app

    s = resolve({"requirements": "requirements/prod.txt", "project_dir": "/srv/my app"})
    actions, _ = repair.plan_repairs(["missing_dependency", "code_outdated"], s, False)
    want = app.pip_install("/srv/my app", s.venv, "requirements/prod.txt")
    by_key = {a.key: [c for _, c in a.commands] for a in actions}
    assert want in by_key["dependencies"] and want in by_key["update"]
    assert "-r requirements/prod.txt" in want and "cd '/srv/my app' && " in want


def test_every_cause_is_repaired_by_known_actions_or_left_to_a_person():
    from tasks.causes import CAUSES

    keys = [key for key, _, _ in repair.actions_for(S)]
    for cause in CAUSES:
        assert set(cause.repair) <= set(keys), cause.id
        assert cause.repair or cause.by_hand or cause.id == "healthy", cause.id


def test_the_causes_repair_column_gives_the_actions_in_repairs_own_order():
    got, _ = keys(["migrations_pending", "missing_dependency", "unit_not_reloaded"])
    assert got == ["daemon-reload", "dependencies", "migrate", "gunicorn"]
    actions, _ = repair.plan_repairs(["stale_socket", "gunicorn_stopped"], S, False)
    assert actions[0].causes == ["stale_socket", "gunicorn_stopped"]
