import subprocess

from tasks import deploy, deploy_commands, lock


def test_the_deploy_is_one_list_of_steps_with_undos_beside_them():
    names = [n for n, _, _ in deploy.DEPLOY]
    assert names == [
        "lock",
        "preflight",
        "fetch",
        "required files",
        "code",
        "requirements",
        "validate",
        "snapshot",
        "migrate",
        "collectstatic",
        "reload",
        "health",
    ]
    undos = {n: u for n, _, u in deploy.DEPLOY if u}
    assert undos == {
        "code": deploy.restore_code,
        "requirements": deploy.restore_requirements,
        "migrate": deploy.unmigrate,
    }
    # Migrations are reversed before the code goes back (their files live in the new code).
    order = [n for n, _, u in reversed(deploy.DEPLOY) if u]
    assert order.index("migrate") < order.index("code")


def test_exit_codes():
    for result, code in [
        ("deployed", 0),
        ("up-to-date", 0),
        ("planned", 0),
        ("refused", 1),
        ("rolled-back", 1),
        ("rollback-failed", 1),
    ]:
        assert deploy.Outcome("h", result).exit_code == code


def test_lock_is_atomic_and_tells_who_holds_it(tmp_path):
    state = str(tmp_path / "state dir")
    owner = {"by": "alice@laptop", "command": "deploy", "since": "now; $(rm -rf /)"}
    first = subprocess.run(["sh", "-c", lock.take(state, "t1", owner)], capture_output=True)
    second = subprocess.run(
        ["sh", "-c", lock.take(state, "t2", owner)], capture_output=True, text=True
    )
    assert first.returncode == 0
    assert second.returncode == 3
    assert lock.read_status(second.stdout).owner == "alice@laptop deploy since now; $(rm -rf /)"
    subprocess.run(["sh", "-c", lock.release(state, "t1")], check=True)
    assert not (tmp_path / "state dir" / "deploy.lock").exists()


def test_history_line_is_one_line_whatever_it_contains(tmp_path):
    line = '{"error": "it\'s \\"broken\\"; $(id)"}'
    subprocess.run(["sh", "-c", deploy_commands.history_append(str(tmp_path), line)], check=True)
    assert (tmp_path / "history.jsonl").read_text() == line + "\n"


def test_probe_never_writes_bytecode_into_the_checkout():
    assert " -B -c " in deploy_commands.deploy_probe("/p", "/p/venv/bin/python", "config.wsgi:app")
    assert deploy_commands.migrate_to("/p", "/p/venv/bin/python", "orders", "0001_initial") == (
        "cd /p && /p/venv/bin/python manage.py migrate orders 0001_initial --noinput"
    )
