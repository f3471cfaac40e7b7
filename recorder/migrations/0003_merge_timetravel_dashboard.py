# Joins the two areas' migrations; the lead may fold this into the merged graph.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("recorder", "0002_dashboard"),
        ("recorder", "0002_timetravel"),
    ]

    operations = []
