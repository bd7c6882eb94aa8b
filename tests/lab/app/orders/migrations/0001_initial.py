from django.db import migrations, models


def seed(apps, schema_editor):
    Order = apps.get_model("orders", "Order")
    Order.objects.bulk_create([Order(customer="kim", quantity=2), Order(customer="lee", quantity=1)])


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Order",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                ("customer", models.CharField(max_length=100)),
                ("quantity", models.PositiveIntegerField(default=1)),
                ("created", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
