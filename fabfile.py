"""cynow-ops: diagnose, deploy and repair the CYNOW server. `fab --list` shows the tasks."""

from invoke import Collection

from tasks import (
    backup,
    deploy,
    diagnose,
    fix_permissions,
    history,
    info,
    logs,
    reboot,
    repair,
    restart,
    rollback,
    status,
    upgrade_unit,
)
from tasks.settings import DEFAULTS, TARGETS

ns = Collection()
ns.add_task(deploy.deploy)
ns.add_task(backup.backup)
ns.add_task(backup.restore)
ns.add_task(backup.unlock)
ns.add_task(rollback.rollback)
ns.add_task(diagnose.diagnose)
ns.add_task(fix_permissions.fix_permissions)
ns.add_task(history.history)
ns.add_task(info.info)
ns.add_task(logs.logs)
ns.add_task(reboot.reboot)
ns.add_task(repair.repair)
ns.add_task(restart.restart)
ns.add_task(status.status)
ns.add_task(upgrade_unit.upgrade_unit)
# config/defaults.yaml and config/targets.yaml are the lowest config level: fabric.yaml,
# `fab -f FILE` and FABRIC_CYNOW_* variables override them (a -f file's targets merge in).
ns.configure({"cynow": {**DEFAULTS, "targets": TARGETS}})
