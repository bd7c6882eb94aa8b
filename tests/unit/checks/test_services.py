from tasks.checks.services import gave_up, state_line


def test_state_line_like_systemctl_status():
    assert (
        state_line(
            {
                "ActiveState": "failed",
                "SubState": "failed",
                "Result": "exit-code",
                "ExecMainStatus": "3",
            }
        )
        == "Active: failed (Result: exit-code), status=3"
    )
    assert state_line({"ActiveState": "inactive", "SubState": "dead"}) == "Active: inactive (dead)"


def test_gave_up_only_when_it_is_systemds_last_word():
    j = ["x systemd[1]: gunicorn.service: Start request repeated too quickly."]
    assert gave_up(j)
    assert not gave_up(j + ["x systemd[1]: Started gunicorn.service - gunicorn daemon."])
