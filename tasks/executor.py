"""`fab -H a,b,c TASK` as one call of the task with every host, instead of Fabric's one call per
host in turn.

Fabric's Executor clones the task once per `-H` host and runs the clones one after another,
stopping at the first failure (fabric#1844, #2156): no concurrency, no summary, no rolling
batches. cynow-ops tasks take the whole host list at once and decide themselves how to walk it
(bounded concurrency for reading tasks, batches for deploys). This executor is named by the
project config (fabric.yaml: `tasks.executor_class`), so plain `fab` picks it up.
"""

from __future__ import annotations

from fabric.executor import Executor as FabricExecutor
from invoke.exceptions import Exit

from tasks.errors import ExitCode

# `fab TASK -- COMMAND` would also run COMMAND through Fabric's own client, which accepts any host
# key and knows nothing of the address guard: refused before anything connects.
REMAINDER_REFUSED = (
    "cynow-ops: `-- COMMAND` is Fabric's ad-hoc run, which verifies no host key and guards no "
    "address; drop it, and run one-off commands with ssh"
)

# Where the -H list travels to the task: a top-level config key, read by connect.target_hosts.
CLI_HOSTS_KEY = "cynow_cli_hosts"


def split_hosts(value: str) -> list[str]:
    """`-H` as Fabric reads it: comma-separated, blanks dropped."""
    return [h.strip() for h in value.split(",") if h.strip()]


class Executor(FabricExecutor):
    def expand_calls(self, calls, apply_hosts=True):
        if self.core.remainder:
            # (The bare `fab -H h -- COMMAND` never gets here: Fabric then loads no fabfile and
            # no fabric.yaml, so neither this executor nor any cynow-ops code runs. README.)
            raise Exit(REMAINDER_REFUSED, code=int(ExitCode.CONFIG))
        given = self.core[0].args.hosts.value if apply_hosts else None
        if not given:
            # No -H: Fabric's behaviour (the tasks then use the configured target's hosts).
            return super().expand_calls(calls, apply_hosts)
        hosts = split_hosts(given)  # may be empty (-H ,): the task says so in one line
        # A config modification outlives the collection config each call loads afterwards.
        self.config[CLI_HOSTS_KEY] = hosts
        return super().expand_calls(calls, apply_hosts=False)
