# Trust becomes a column: jobs that the old "started_by_a_user" option did not mark were started
# from the command line.

from typing import Any

from django.db import migrations, models


def from_options(apps: Any, schema_editor: Any) -> None:
    ImportJob = apps.get_model("bulkadmin", "ImportJob")
    for job in ImportJob.objects.only("pk", "options", "created_by").iterator():
        person = bool(job.options.pop("started_by_a_user", False)) or job.created_by_id is not None
        job.started_via = "person" if person else "command_line"
        job.save(update_fields=["started_via", "options"])


class Migration(migrations.Migration):
    dependencies = [
        ("bulkadmin", "0002_row_ordering_by_column"),
    ]

    operations = [
        migrations.AddField(
            model_name="importjob",
            name="started_via",
            field=models.CharField(
                choices=[("person", "a person"), ("command_line", "the command line")],
                default="person",
                max_length=16,
                verbose_name="started via",
            ),
        ),
        migrations.RunPython(from_options, migrations.RunPython.noop),
    ]
