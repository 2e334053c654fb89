# The queue index gains id: claims order by (send_at, id), and a whole evaluation often shares
# one send time, so the index must give that order without a sort of the backlog.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0002_permissions_schedules_policy'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='message',
            name='message_queued_due_idx',
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('status', 'queued')), fields=['campaign', 'send_at', 'id'], name='message_queue_idx'),
        ),
    ]
