"""Read-only checks, one module per step of the 502 guide: a parser of remote output plus a pure
evaluation into CheckResults. Nothing here touches the network (see tasks/diagnose.py)."""
