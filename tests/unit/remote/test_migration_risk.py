"""tasks/remote/migration_risk.py on real Django migration objects (no database needed)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(INSTALLED_APPS=[], DATABASES={})
    django.setup()

from django.db import migrations, models  # noqa: E402
from django.db.migrations.state import ProjectState  # noqa: E402

from tasks.remote import migration_risk as risk  # noqa: E402


def forward(apps, schema_editor):
    pass


def backward(apps, schema_editor):
    pass


@pytest.fixture
def state():
    st = ProjectState()
    migrations.CreateModel(
        "Order",
        [
            ("id", models.AutoField(primary_key=True)),
            ("customer", models.CharField(max_length=200)),
            ("code", models.CharField(max_length=20)),
            ("price", models.DecimalField(max_digits=8, decimal_places=2)),
            ("weight", models.FloatField()),
            ("qty", models.SmallIntegerField()),
            ("body", models.TextField()),
        ],
    ).state_forwards("orders", st)
    migrations.AddField(
        "order", "note", models.CharField(max_length=200, null=True)
    ).state_forwards("orders", st)
    return st


def kind(op, st):
    return risk.classify_operation("orders", op, st)


def test_remove_nullable_field_loses_the_column(state):
    v = kind(migrations.RemoveField("order", "note"), state)
    assert v == {
        "op": "RemoveField",
        "kind": "lossy",
        "what": "orders.Order.note: the column is dropped with its data; reversing brings it "
        "back empty",
    }


def test_remove_not_null_field_without_default_says_reversing_fails(state):
    v = kind(migrations.RemoveField("order", "code"), state)
    assert v["kind"] == "lossy" and "reversing fails" in v["what"]


def test_delete_model_loses_the_table(state):
    v = kind(migrations.DeleteModel("Order"), state)
    assert v["kind"] == "lossy" and v["what"].startswith("orders.Order: the table is dropped")


@pytest.mark.parametrize(
    "op, expected",
    [
        (migrations.RunPython(forward, migrations.RunPython.noop), "lossy"),
        (migrations.RunPython(forward), "irreversible"),
        (migrations.RunPython(forward, backward), "safe"),
        (migrations.RunSQL("update t set a = 1", migrations.RunSQL.noop), "lossy"),
        (migrations.RunSQL("update t set a = 1", []), "lossy"),
        (migrations.RunSQL("update t set a = 1"), "irreversible"),
        (migrations.RunSQL("update t set a = 1", "update t set a = 0"), "safe"),
    ],
)
def test_code_and_sql(op, expected, state):
    assert kind(op, state)["kind"] == expected


def test_code_and_sql_lines_name_what_runs(state):
    v = kind(migrations.RunPython(forward, migrations.RunPython.noop), state)
    assert v["what"] == "RunPython forward: its reverse does nothing: what it changed stays changed"
    assert "update t" in kind(migrations.RunSQL("update t set a = 1"), state)["what"]


@pytest.mark.parametrize(
    "name, field, expected",
    [
        ("customer", models.CharField(max_length=50), "lossy"),  # was 200
        ("customer", models.CharField(max_length=400), "safe"),
        ("customer", models.TextField(), "safe"),
        ("customer", models.IntegerField(), "lossy"),
        ("body", models.CharField(max_length=100), "lossy"),  # TextField -> CharField
        ("note", models.CharField(max_length=200), "lossy"),  # null True -> False
        ("code", models.CharField(max_length=20, null=True), "safe"),  # null False -> True
        ("price", models.DecimalField(max_digits=6, decimal_places=2), "lossy"),
        ("price", models.DecimalField(max_digits=8, decimal_places=1), "lossy"),
        ("price", models.DecimalField(max_digits=10, decimal_places=2), "safe"),
        ("weight", models.DecimalField(max_digits=10, decimal_places=2), "lossy"),
        ("qty", models.IntegerField(), "safe"),
        ("qty", models.BigIntegerField(), "safe"),
    ],
)
def test_alter_field(name, field, expected, state):
    assert kind(migrations.AlterField("order", name, field), state)["kind"] == expected


def test_alter_field_says_why(state):
    v = kind(migrations.AlterField("order", "customer", models.CharField(max_length=50)), state)
    assert v["what"].startswith("orders.Order.customer: max_length shrinks from 200 to 50")
    v = kind(migrations.AlterField("order", "note", models.CharField(max_length=200)), state)
    assert "NULL" in v["what"]


def test_alter_field_of_an_unknown_field_is_lossy(state):
    v = kind(migrations.AlterField("order", "ghost", models.IntegerField()), state)
    assert v["kind"] == "lossy" and "unknown previous field" in v["what"]
    v = kind(migrations.AlterField("nowhere", "x", models.IntegerField()), state)
    assert v["kind"] == "lossy" and "unknown previous field" in v["what"]


@pytest.mark.parametrize(
    "op",
    [
        migrations.AddField("order", "extra", models.IntegerField(default=0)),
        migrations.RenameField("order", "note", "remark"),
        migrations.RenameModel("Order", "Purchase"),
        migrations.CreateModel("Item", [("id", models.AutoField(primary_key=True))]),
        migrations.AlterModelOptions("order", {"ordering": ["id"]}),
        migrations.AddIndex("order", models.Index(fields=["code"], name="order_code_idx")),
        migrations.AlterUniqueTogether("order", {("code", "customer")}),
    ],
)
def test_safe_operations(op, state):
    assert kind(op, state) == {"op": type(op).__name__, "kind": "safe", "what": ""}


def test_separate_database_and_state_is_judged_by_its_database_operations(state):
    op = migrations.SeparateDatabaseAndState(
        database_operations=[migrations.RemoveField("order", "note")],
        state_operations=[migrations.RemoveField("order", "note")],
    )
    v = kind(op, state)
    assert v["op"] == "SeparateDatabaseAndState" and v["kind"] == "lossy"
    assert v["what"].startswith("RemoveField: orders.Order.note")
    only_state = migrations.SeparateDatabaseAndState(
        state_operations=[migrations.RemoveField("order", "note")]
    )
    assert kind(only_state, state)["kind"] == "safe"


def test_separate_database_and_state_worst_wins_and_sees_earlier_inner_ops(state):
    op = migrations.SeparateDatabaseAndState(
        database_operations=[
            migrations.AddField("order", "tmp", models.IntegerField(null=True)),
            migrations.RemoveField("order", "tmp"),
            migrations.RunSQL("update t set a = 1"),
        ]
    )
    assert kind(op, state)["kind"] == "irreversible"
    assert "tmp" not in state.models["orders", "order"].fields


def test_a_later_operation_sees_the_field_an_earlier_one_added(state):
    migration = migrations.Migration("0002_x", "orders")
    migration.operations = [
        migrations.AddField("order", "tmp", models.IntegerField(null=True)),
        migrations.RemoveField("order", "tmp"),
    ]
    v = risk.classify_migration("orders", migration, state)
    assert v["kind"] == "lossy"
    assert [o["op"] for o in v["ops"]] == ["RemoveField"]
    assert v["ops"][0]["what"].startswith("orders.Order.tmp:")
    assert "reversing fails" not in v["ops"][0]["what"]  # the field it saw was nullable


def test_classify_migration_leaves_the_callers_state_alone(state):
    before = {key: dict(model.fields) for key, model in state.models.items()}
    migration = migrations.Migration("0002_x", "orders")
    migration.operations = [
        migrations.AddField("order", "tmp", models.IntegerField(null=True)),
        migrations.RemoveField("order", "code"),
        migrations.DeleteModel("Order"),
    ]
    risk.classify_migration("orders", migration, state)
    assert {key: dict(model.fields) for key, model in state.models.items()} == before


@pytest.mark.parametrize(
    "ops, expected, risky",
    [
        ([], "safe", []),
        ([migrations.AddField("order", "x", models.IntegerField(null=True))], "safe", []),
        (
            [migrations.RemoveField("order", "note"), migrations.RunPython(forward, backward)],
            "lossy",
            ["RemoveField"],
        ),
        (
            [migrations.RunPython(forward), migrations.RemoveField("order", "note")],
            "irreversible",
            ["RunPython", "RemoveField"],
        ),
        (
            [
                migrations.RunSQL("select 1", migrations.RunSQL.noop),
                migrations.RunSQL("select 1"),
                migrations.DeleteModel("Order"),
            ],
            "irreversible",
            ["RunSQL", "RunSQL", "DeleteModel"],
        ),
    ],
)
def test_a_migration_is_its_worst_operation_and_lists_the_risky_ones_in_order(
    ops, expected, risky, state
):
    migration = migrations.Migration("0002_x", "orders")
    migration.operations = ops
    v = risk.classify_migration("orders", migration, state)
    assert v["kind"] == expected
    assert [o["op"] for o in v["ops"]] == risky
    assert all(o["kind"] != "safe" for o in v["ops"])


SOURCE = Path(risk.__file__).read_text()


def test_the_shipped_source_imports_only_the_stdlib_and_django_and_defines_only():
    tree = ast.parse(SOURCE)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            roots = [node.module.split(".")[0]]
        else:
            continue
        for root in roots:
            assert root == "django" or root in sys.stdlib_module_names, root
    for node in tree.body:  # nothing runs at import but definitions of constants and functions
        assert isinstance(node, (ast.FunctionDef, ast.Assign, ast.Import, ast.ImportFrom)), node


def test_the_shipped_source_runs_as_a_plain_string(state):
    """As the probe sends it: exec'd text with nothing but the stdlib and django."""
    compile(SOURCE, "<probe>", "exec")
    space: dict = {}
    exec(SOURCE, space)
    v = space["classify_operation"]("orders", migrations.DeleteModel("Order"), state)
    assert v["kind"] == "lossy"
    migration = migrations.Migration("0002_x", "orders")
    migration.operations = [migrations.RemoveField("order", "code")]
    assert space["classify_migration"]("orders", migration, state)["kind"] == "lossy"
