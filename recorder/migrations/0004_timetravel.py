import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recorder", "0003_retention"),
    ]

    operations = [
        migrations.CreateModel(
            name="Keyframe",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("ts", models.BigIntegerField()),
                ("seq", models.BigIntegerField()),
                ("event_id", models.BigIntegerField()),
                ("ops", models.BigIntegerField()),
                ("events", models.BigIntegerField()),
                ("state", models.JSONField()),
                ("latest", models.JSONField()),
                ("counts", models.JSONField()),
                ("errors", models.JSONField()),
                ("error_total", models.BigIntegerField(default=0)),
                ("session", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="recorder.session")),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("session", "ts", "seq"), name="keyframe_position")],
            },
        ),
    ]
