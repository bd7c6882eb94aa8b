"""tasks/remote/migration_risk.py on real Django migration objects (no database needed)."""

from __future__ import annotations

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


@pytest.fixture
def state():
    st = ProjectState()
    migrations.CreateModel(
        "Order",
        [
            ("id", models.AutoField(primary_key=True)),
            ("customer", models.CharField(max_length=200)),
            ("note", models.CharField(max_length=200, null=True)),
            ("code", models.CharField(max_length=20)),
            ("price", models.DecimalField(max_digits=8, decimal_places=2)),
        ],
    ).state_forwards("orders", st)
    return st


def kind(op, st):
    return risk.classify_operation("orders", op, st)


def test_remove_field_loses_the_column(state):
    v = kind(migrations.RemoveField("order", "note"), state)
    assert v["kind"] == "lossy" and "orders.order.note" in v["what"]
    assert "reversing fails" not in v["what"]


def test_remove_field_not_null_without_default_says_reversing_fails(state):
    v = kind(migrations.RemoveField("order", "code"), state)
    assert v["kind"] == "lossy" and "reversing fails" in v["what"]


def test_delete_model_loses_the_table(state):
    assert kind(migrations.DeleteModel("Order"), state)["kind"] == "lossy"


@pytest.mark.parametrize(
    "op, expected",
    [
        (migrations.RunPython(forward, migrations.RunPython.noop), "lossy"),
        (migrations.RunPython(forward), "irreversible"),
        (migrations.RunPython(forward, forward), "safe"),
        (migrations.RunSQL("update t set a = 1", migrations.RunSQL.noop), "lossy"),
        (migrations.RunSQL("update t set a = 1"), "irreversible"),
        (migrations.RunSQL("update t set a = 1", "update t set a = 0"), "safe"),
    ],
)
def test_code_and_sql(op, expected, state):
    assert kind(op, state)["kind"] == expected


@pytest.mark.parametrize(
    "field, expected",
    [
        (models.CharField(max_length=50), "lossy"),  # customer was 200
        (models.CharField(max_length=400), "safe"),
        (models.TextField(), "safe"),
        (models.IntegerField(), "lossy"),
    ],
)
def test_alter_field_customer(field, expected, state):
    assert kind(migrations.AlterField("order", "customer", field), state)["kind"] == expected


def test_alter_field_dropping_null_and_shrinking_decimals(state):
    v = kind(migrations.AlterField("order", "note", models.CharField(max_length=200)), state)
    assert v["kind"] == "lossy" and "NULL" in v["what"]
    v = kind(
        migrations.AlterField(
            "order", "price", models.DecimalField(max_digits=6, decimal_places=2)
        ),
        state,
    )
    assert v["kind"] == "lossy" and "max_digits" in v["what"]


def test_text_to_char_is_lossy():
    st = ProjectState()
    migrations.CreateModel(
        "Page", [("id", models.AutoField(primary_key=True)), ("body", models.TextField())]
    ).state_forwards("orders", st)
    op = migrations.AlterField("page", "body", models.CharField(max_length=100))
    assert risk.classify_operation("orders", op, st)["kind"] == "lossy"


@pytest.mark.parametrize(
    "op",
    [
        migrations.AddField("order", "extra", models.IntegerField(default=0)),
        migrations.RenameField("order", "note", "remark"),
        migrations.CreateModel("Item", [("id", models.AutoField(primary_key=True))]),
        migrations.AlterModelOptions("order", {"ordering": ["id"]}),
    ],
)
def test_safe_operations(op, state):
    assert kind(op, state)["kind"] == "safe"


def test_separate_database_and_state_is_judged_by_its_database_operations(state):
    op = migrations.SeparateDatabaseAndState(
        database_operations=[migrations.RemoveField("order", "note")]
    )
    v = kind(op, state)
    assert v["kind"] == "lossy" and v["what"].startswith("RemoveField: ")
    assert kind(migrations.SeparateDatabaseAndState(state_operations=[]), state)["kind"] == "safe"


class Migration(migrations.Migration):
    operations = [
        migrations.AddField("order", "tmp", models.IntegerField(null=True)),
        migrations.RemoveField("order", "tmp"),
        migrations.RunPython(forward),
    ]


def test_a_migration_is_its_worst_operation_each_seen_after_the_ones_before(state):
    before = set(state.models["orders", "order"].fields)
    v = risk.classify_migration("orders", Migration("0002_x", "orders"), state)
    assert v["kind"] == "irreversible"
    assert [o["op"] for o in v["ops"]] == ["RemoveField", "RunPython"]
    assert "reversing fails" not in v["ops"][0]["what"]  # the field it saw was nullable
    assert set(state.models["orders", "order"].fields) == before  # the caller's state kept


def test_the_shipped_source_runs_as_a_plain_string(state):
    """As the probe sends it: exec'd text with nothing but the stdlib and django."""
    space: dict = {}
    exec(Path(risk.__file__).read_text(), space)
    v = space["classify_operation"]("orders", migrations.DeleteModel("Order"), state)
    assert v["kind"] == "lossy"
