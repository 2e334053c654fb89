from django.db import migrations


class Migration(migrations.Migration):
    """Staff-facing names only: the NPS model reads "NPS answers" in the admin. No schema change."""

    dependencies = [
        ("customers", "0009_partial_foreign_key_indexes"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="npsresponse",
            options={
                "ordering": ["-answered_at", "-id"],
                "verbose_name": "NPS answer",
                "verbose_name_plural": "NPS answers",
            },
        ),
    ]
