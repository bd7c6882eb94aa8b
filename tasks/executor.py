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

# Where the -H list travels to the task: a top-level config key, read by connect.target_hosts.
CLI_HOSTS_KEY = "cynow_cli_hosts"


def split_hosts(value: str) -> list[str]:
    """`-H` as Fabric reads it: comma-separated, blanks dropped."""
    return [h.strip() for h in value.split(",") if h.strip()]


class Executor(FabricExecutor):
    def expand_calls(self, calls, apply_hosts=True):
        given = self.core[0].args.hosts.value if apply_hosts else None
        if not given or self.core.remainder:
            # No -H, or `fab -H h -- command` (Fabric's own ad-hoc run): Fabric's behaviour.
            return super().expand_calls(calls, apply_hosts)
        hosts = split_hosts(given)  # may be empty (-H ,): the task says so in one line
        # A config modification outlives the collection config each call loads afterwards.
        self.config[CLI_HOSTS_KEY] = hosts
        return super().expand_calls(calls, apply_hosts=False)
