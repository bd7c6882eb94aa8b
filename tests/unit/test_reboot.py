"""`fab reboot`: what would not start at boot refuses it."""

from tasks.reboot import boot_blockers


def test_boot_blockers():
    assert (
        boot_blockers({"gunicorn.service": {"LoadState": "loaded", "UnitFileState": "enabled"}})
        == []
    )
    (msg,) = boot_blockers(
        {"gunicorn.service": {"LoadState": "loaded", "UnitFileState": "disabled"}}
    )
    assert msg.startswith("gunicorn.service is disabled") and "systemctl enable" in msg
    assert boot_blockers({"nginx.service": {"LoadState": "not-found"}}) == [
        "nginx.service is not installed"
    ]
