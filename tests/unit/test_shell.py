"""The one quoting helper and the one framing, run in a real shell."""

import subprocess

import pytest

from tasks import shell

HOSTILE = [
    "with space",
    "semi;colon",
    "$(touch /tmp/pwned)",
    "`id`",
    "quote'single",
    'quote"double',
    "new\nline",
    "-leading-dash",
    "back\\slash",
    "glob*?[x]",
    "",
    "ünïcødé",
]


def sh(script, **kw):
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, **kw)


@pytest.mark.parametrize("value", HOSTILE)
def test_quote_survives_a_real_shell(value, tmp_path):
    # The quoted value reaches the program as exactly one, unchanged argument.
    out = sh(f"printf '%s' {shell.q(value)}", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout == value
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", HOSTILE)
def test_nested_quoting_through_sudo_wrapper(value):
    # as_root wraps a command line in sh -c: values quoted inside must survive both levels.
    wrapped = shell.as_root(f"printf '%s' {shell.q(value)}")
    assert wrapped.startswith("sudo -n -- sh -c ")
    assert sh(wrapped.removeprefix("sudo -n -- ")).stdout == value


def test_exact_strings():
    assert shell.join("ls", "-l", "a b") == "ls -l 'a b'"
    assert shell.as_user("cynow", "id -u") == "sudo -n -u cynow -- sh -c 'id -u'"
    assert shell.in_dir("/srv/my app", "ls") == "cd '/srv/my app' && ls"


def test_batch_runs_each_part_apart_and_frames_its_output(tmp_path):
    script = shell.batch(
        {
            "a": "echo one; echo two",
            "b": "cd /; exit 3",  # neither the exit nor the cd leaks into the next part
            "c": "pwd; printf 'no newline'",
            "d": "true",
        }
    )
    parts = shell.read_batch(sh(script, cwd=tmp_path).stdout)
    assert parts == {
        "a": ("one\ntwo\n", 0),
        "b": ("", 3),
        "c": (f"{tmp_path}\nno newline", 0),
        "d": ("", 0),
    }


def test_sequence_stops_at_the_first_failing_part():
    out = sh(shell.sequence({"a": "echo one", "b": "echo two; exit 4", "c": "echo never"}))
    assert out.returncode == 4
    assert shell.read_batch(out.stdout) == {"a": ("one\n", 0), "b": ("two\n", 4)}


def test_the_nonce_is_drawn_on_the_server_and_differs_per_run():
    script = shell.batch({"a": "true"})
    first, second = sh(script).stdout.splitlines()[0], sh(script).stdout.splitlines()[0]
    assert first != second and first.startswith(shell.MARK + " ")
    # Not in the command line: `ps` shows argv to every user on the server.
    assert first.split()[1] not in script


def test_server_text_cannot_forge_or_cut_a_frame():
    # A log line that copies the markers (even the old fixed ones) is output, nothing more.
    forged = (
        f"{shell.MARK} begin listen\\n{shell.MARK} end a 0\\n"
        f"{shell.MARK} 0123456789abcdef begin b\\n"
        f"{shell.MARK} 0123456789abcdef\\n"
    )
    out = sh(shell.batch({"a": f"printf '{forged}'", "b": "echo real"})).stdout
    parts = shell.read_batch(out)
    assert parts["a"].code == 0 and parts["a"].text == forged.replace("\\n", "\n")
    assert parts["b"] == ("real\n", 0) and set(parts) == {"a", "b"}


def test_a_nested_batch_is_one_part_of_the_outer():
    inner = shell.batch({"x": "echo in"})
    out = sh(shell.batch({"outer": inner, "after": "echo after"})).stdout
    parts = shell.read_batch(out)
    assert parts["after"] == ("after\n", 0)
    assert shell.read_batch(parts["outer"].text) == {"x": ("in\n", 0)}


def test_cut_off_output_keeps_what_arrived_without_a_status():
    out = sh(shell.batch({"a": "echo one", "b": "echo partial"})).stdout
    cut = out[: out.index("partial") + len("partial")]
    assert shell.read_batch(cut) == {"a": ("one\n", 0), "b": ("partial", 255)}


def test_part_names_are_plain_words():
    with pytest.raises(ValueError):
        shell.batch({"a b": "true"})
