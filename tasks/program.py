"""cynow-ops' own `fab` program (the repository's `./fab` runs it): Fabric's, except that the
bare `fab -H HOST -- COMMAND` is refused before anything connects.

In that form Fabric loads no fabfile and no fabric.yaml, so none of cynow-ops runs: not the host
key check (Fabric's client accepts any key, a changed one too: it reads no known_hosts), not the
address guard. `tasks/executor.py` refuses `-- COMMAND` beside a task; this refuses it alone.
`.venv/bin/fab` is Fabric's program and still runs the bare form: use `./fab`.
"""

from __future__ import annotations

import fabric
from fabric.config import Config
from fabric.executor import Executor
from fabric.main import Fab
from invoke.exceptions import Exit

from tasks.errors import ExitCode

BARE_REFUSED = (
    "cynow-ops: `fab -H HOST -- COMMAND` is Fabric's ad-hoc run, without cynow-ops: it "
    "verifies no host key and guards no address; run one-off commands with ssh"
)


class Program(Fab):
    def load_collection(self):
        if self._remainder_only:
            raise Exit(BARE_REFUSED, code=int(ExitCode.CONFIG))
        super().load_collection()


def make_program() -> Program:
    """As fabric.main.make_program, with the refusal (fabric.yaml names the executor)."""
    return Program(
        name="Fabric",
        version=fabric,
        binary="fab",
        binary_names=["fab"],
        executor_class=Executor,
        config_class=Config,
    )


program = make_program()

if __name__ == "__main__":
    program.run()
