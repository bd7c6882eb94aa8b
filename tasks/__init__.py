"""cynow-ops: Fabric tasks that diagnose, deploy and repair the CYNOW server."""
