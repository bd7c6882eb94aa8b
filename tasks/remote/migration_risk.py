# What reversing a Django migration would lose: each operation classified as
#   safe          reversing gives back what was there
#   lossy         reversible in schema, but data is gone (a dropped column comes back empty)
#   irreversible  Django cannot reverse it at all
# Sent to the server ahead of deploy_probe.py as plain text inside `python -c`, so it stays
# standalone (stdlib and django only, top-level definitions, nothing run at import); unit-tested
# on real migration objects in tests/unit/remote/test_migration_risk.py.

RANK = {"safe": 0, "lossy": 1, "irreversible": 2}

# Field class changes that keep every value (the reverse narrows, which the forward does not).
WIDENING = {
    ("CharField", "TextField"),
    ("SmallIntegerField", "IntegerField"),
    ("SmallIntegerField", "BigIntegerField"),
    ("IntegerField", "BigIntegerField"),
    ("PositiveSmallIntegerField", "PositiveIntegerField"),
    ("PositiveSmallIntegerField", "PositiveBigIntegerField"),
    ("PositiveIntegerField", "PositiveBigIntegerField"),
}

NOOP_REVERSE = "its reverse does nothing: what it changed stays changed"


def _verdict(op, kind, what):
    return {"op": type(op).__name__, "kind": kind, "what": what}


def _model(state, app_label, model_name):
    return state.models.get((app_label, model_name.lower()))


def _where(state, app_label, model_name, field_name=None):
    # The model's own spelling (Order, not order) when the state knows it: the line is for people.
    model = _model(state, app_label, model_name)
    where = f"{app_label}.{model.name if model is not None else model_name}"
    return f"{where}.{field_name}" if field_name else where


def _old_field(state, app_label, model_name, name):
    model = _model(state, app_label, model_name)
    return model.fields.get(name) if model is not None else None


def _label(op):
    # Code and SQL name no model: the function or the start of the statement stands for it.
    if hasattr(op, "code"):
        return f"RunPython {getattr(op.code, '__name__', repr(op.code))}"
    if hasattr(op, "sql"):
        sql = " ".join(str(op.sql).split())
        return f"RunSQL {sql[:60]!r}"
    return type(op).__name__


def _sql_is_noop(sql):
    # RunSQL.noop is "", and a list may hold only such strings or (sql, params) pairs.
    if isinstance(sql, (list, tuple)):
        return all(_sql_is_noop(s[0] if isinstance(s, (list, tuple)) else s) for s in sql)
    return isinstance(sql, str) and not sql.strip()


def _narrowing(old, new):
    """Why `new` cannot hold every value `old` held, or ""."""
    a, b = type(old).__name__, type(new).__name__
    if a != b and (a, b) not in WIDENING:
        return f"its type changes from {a} to {b}"
    if old.max_length and new.max_length and new.max_length < old.max_length:
        return f"max_length shrinks from {old.max_length} to {new.max_length}"
    if old.null and not new.null:
        return "it no longer allows NULL"
    for attr in ("max_digits", "decimal_places"):
        was, now = getattr(old, attr, None), getattr(new, attr, None)
        if was and now and now < was:
            return f"{attr} shrinks from {was} to {now}"
    return ""


def classify_operation(app_label, op, state):
    from django.db import migrations

    if isinstance(op, migrations.SeparateDatabaseAndState):
        # Only the database side touches data; each of its operations sees the ones before it,
        # as Django's own database_backwards does.
        st, worst = state.clone(), None
        for inner in op.database_operations:
            v = classify_operation(app_label, inner, st)
            if worst is None or RANK[v["kind"]] > RANK[worst["kind"]]:
                worst = v
            inner.state_forwards(app_label, st)
        if worst is None or worst["kind"] == "safe":
            return _verdict(op, "safe", "")
        return _verdict(op, worst["kind"], f"{worst['op']}: {worst['what']}")
    if not op.reversible:
        return _verdict(op, "irreversible", f"{_label(op)}: it has no reverse; Django refuses")
    if isinstance(op, migrations.RunPython) and op.reverse_code is migrations.RunPython.noop:
        return _verdict(op, "lossy", f"{_label(op)}: {NOOP_REVERSE}")
    if isinstance(op, migrations.RunSQL) and _sql_is_noop(op.reverse_sql):
        return _verdict(op, "lossy", f"{_label(op)}: {NOOP_REVERSE}")
    if isinstance(op, migrations.RemoveField):
        old = _old_field(state, app_label, op.model_name, op.name)
        what = (
            f"{_where(state, app_label, op.model_name, op.name)}: the column is dropped with its"
            " data; reversing brings it back empty"
        )
        # Re-adding a NOT NULL column with nothing to fill existing rows fails in the database.
        if old is not None and not old.null and not old.has_default():
            what += " (NOT NULL without default: reversing fails)"
        return _verdict(op, "lossy", what)
    if isinstance(op, migrations.DeleteModel):
        where = _where(state, app_label, op.name)
        return _verdict(op, "lossy", f"{where}: the table is dropped with all its rows")
    if isinstance(op, migrations.AlterField):
        where = _where(state, app_label, op.model_name, op.name)
        old = _old_field(state, app_label, op.model_name, op.name)
        if old is None:
            return _verdict(op, "lossy", f"{where}: unknown previous field, cannot tell")
        why = _narrowing(old, op.field)
        if why:
            return _verdict(op, "lossy", f"{where}: {why}; values that do not fit are lost")
    return _verdict(op, "safe", "")


def classify_migration(app_label, migration, state):
    """The worst kind among the operations, and the ones that are not safe; each operation
    is judged against the state the ones before it left (a clone: the caller's is kept)."""
    st = state.clone()
    risky, kind = [], "safe"
    for op in migration.operations:
        verdict = classify_operation(app_label, op, st)
        if verdict["kind"] != "safe":
            risky.append(verdict)
            if RANK[verdict["kind"]] > RANK[kind]:
                kind = verdict["kind"]
        op.state_forwards(app_label, st)
    return {"kind": kind, "ops": risky}
