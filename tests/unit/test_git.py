"""git runs as the checkout's owner, never with git's ownership guard switched off.

The attack from issue 13: a `.git/config` the app user wrote names a program (core.fsmonitor
here; gpg.program works the same way) and the operator's next `fab status` runs it as root.
These tests run the real git and shell; a stand-in `sudo` drops to the uid it is given with
setpriv, as the real one would (this machine has no sudo), so the hook's uid is real.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

from tasks import git, info, shell, status

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
NOBODY = 65534


def test_git_never_switches_the_ownership_guard_off():
    assert git.git("/home/cynow/cynow", "rev-parse", "HEAD") == (
        "git -C /home/cynow/cynow rev-parse HEAD"
    )
    assert "safe.directory" not in git.git("/srv/my app", "status")
    assert "-C '/srv/my app' status" in git.git("/srv/my app", "status")


@pytest.fixture
def hostile_checkout():
    """A repository owned by `nobody` whose .git/config runs a hook on every git status (in a
    directory `nobody` can reach: pytest's own tmp_path is private to root)."""
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="cynow-git-"))
    tmp_path.chmod(0o755)
    yield from _hostile(tmp_path)
    shutil.rmtree(tmp_path)


def _hostile(tmp_path):
    repo = tmp_path / "checkout"
    repo.mkdir()
    run = lambda *a: subprocess.run(a, cwd=repo, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q", "-b", "main")
    (repo / "f").write_text("x\n")
    run("git", "add", "f")
    run("git", "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "-m", "first")
    ran = tmp_path / "ran-as"
    hook = tmp_path / "hook"
    hook.write_text(f"#!/bin/sh\nid -u >> {ran}\n")
    hook.chmod(0o755)
    run("git", "config", "core.fsmonitor", str(hook))
    tmp_path.chmod(0o777)  # the hook (as nobody) writes its uid beside the checkout
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(repo)], check=True)
    yield repo, ran


@pytest.fixture
def fake_sudo(tmp_path):
    """`sudo -n -u '#UID' -- sh -c CMD` as setpriv runs it: a real change of uid."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sudo").write_text(
        "#!/bin/sh\n"
        '[ "$1" = -n ] && [ "$2" = -u ] && [ "$4" = -- ] || exit 97\n'
        "u=${3#\\#}; shift 4\n"
        'exec setpriv --reuid "$u" --regid "$u" --clear-groups "$@"\n'
    )
    (bindir / "sudo").chmod(0o755)
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "HOME": "/nonexistent"}


@needs_root
@pytest.mark.skipif(not shutil.which("setpriv"), reason="setpriv (util-linux) is not installed")
def test_root_runs_the_checkouts_git_as_its_owner(hostile_checkout, fake_sudo):
    repo, ran = hostile_checkout
    script = shell.as_owner(str(repo), git.git(str(repo), "status", "--porcelain"))
    out = subprocess.run(["sh", "-c", script], env=fake_sudo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert ran.read_text().split() == [str(NOBODY)], "the hook ran, as the owner and only so"


@needs_root
def test_root_git_without_the_owner_refuses_and_runs_nothing(hostile_checkout):
    repo, ran = hostile_checkout
    out = subprocess.run(
        ["sh", "-c", git.git(str(repo), "status")],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": "/nonexistent"},
    )
    assert out.returncode != 0 and "dubious ownership" in out.stderr
    assert not ran.exists()


@needs_root
@pytest.mark.skipif(not shutil.which("setpriv"), reason="setpriv (util-linux) is not installed")
def test_status_reads_the_commit_as_the_owner(hostile_checkout, fake_sudo):
    repo, ran = hostile_checkout
    script = shell.as_owner(str(repo), status.commit_lines(str(repo)))
    out = subprocess.run(["sh", "-c", script], env=fake_sudo, capture_output=True, text=True)
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert len(lines["commit"]) == 40 and lines["subject"] == "first"
    assert not ran.exists() or set(ran.read_text().split()) == {str(NOBODY)}


def test_as_owner_needs_no_sudo_for_ones_own_files(tmp_path):
    (tmp_path / ".git").mkdir()  # a checkout of one's own (root's alone, when run as root)
    (tmp_path / ".git" / "config").write_text("")
    out = subprocess.run(
        ["sh", "-c", shell.as_owner(str(tmp_path), "id -u")],
        env={**os.environ, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == str(os.geteuid())


def test_info_runs_the_venvs_python_as_the_app_user_and_git_as_the_owner():
    script = info.info_script("/srv/my app", "/srv/my app/venv/bin/python", ["g.service"], "cy")
    assert "safe.directory" not in script
    # The python line is wrapped for the app user, the git lines for the checkout's owner.
    assert "sudo -n -u cy -- sh -c" in script
    assert "stat -c %u -- '/srv/my app'" in script
    inner = shell.as_user_here("cy", "true")
    assert inner.startswith('if [ "$(id -un)" = cy ]')


def test_info_script_quotes_paths(tmp_path):
    """The venv path with a space reaches python as one argument (run for real)."""
    venv = tmp_path / "my venv"
    venv.mkdir()
    py = venv / "python"
    py.write_text('#!/bin/sh\nprintf "Python 3.0 %s\\n" "$#"\n')
    py.chmod(0o755)
    me = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    script = info.info_script(str(tmp_path), str(py), ["none.service"], me)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    parsed = info.parse_info(out.stdout)
    assert parsed["python"] == "Python 3.0 2"  # found despite the space; given -I --version


@pytest.fixture
def roots_checkout():
    """A root-owned checkout whose .git/config runs a hook on every git status."""
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="cynow-git-"))
    tmp_path.chmod(0o755)
    for repo, ran in _hostile(tmp_path):
        subprocess.run(["chown", "-R", "0:0", str(repo)], check=True)
        yield repo, ran
    shutil.rmtree(tmp_path)


@needs_root
@pytest.mark.parametrize(
    "hostile",
    [
        f"chown {NOBODY} .git/config",  # the app user's config in root's checkout
        "chmod 666 .git/config",  # anyone may write it
        "chmod 775 .git",  # the group may replace it
        f"chown {NOBODY} .git",
        "mv .git/config .git/c && ln -s c .git/config",  # a link: judged by itself
    ],
)
def test_root_runs_no_git_in_a_root_checkout_whose_config_others_can_write(
    roots_checkout, fake_sudo, hostile
):
    repo, ran = roots_checkout
    subprocess.run(["sh", "-c", hostile], cwd=repo, check=True)
    script = shell.as_owner(str(repo), git.git(str(repo), "status", "--porcelain"))
    out = subprocess.run(["sh", "-c", script], env=fake_sudo, capture_output=True, text=True)
    assert out.returncode != 0 and out.stdout == ""
    assert out.stderr == f"{repo} is root's but its .git or .git/config is not root's alone: " + (
        "not run as root\n"
    )
    assert not ran.exists()


@needs_root
def test_a_checkout_root_alone_can_change_is_read_as_root(roots_checkout, fake_sudo):
    repo, ran = roots_checkout
    script = shell.as_owner(str(repo), git.git(str(repo), "status", "--porcelain"))
    out = subprocess.run(["sh", "-c", script], env=fake_sudo, capture_output=True, text=True)
    assert out.returncode == 0 and "not run as root" not in out.stderr, out
    assert ran.read_text().split() == ["0"]  # root's own hook, in root's own config
