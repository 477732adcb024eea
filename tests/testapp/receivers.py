"""Receivers the tests steer through ``Knob`` rows, which every process can read.

Knob ``record_signals`` records every pre_save/post_save of a new user with its pid;
``row_delay`` sleeps that many seconds per user (slow rows, for cancel and crash tests);
a username containing ``boom`` raises in pre_save (a row that fails on import);
``die_file`` names a file: the first process to save a user whose name contains ``die``
while that file exists deletes it and exits at once (a worker dying mid-chunk);
``always_die`` makes such a user kill its process every time.
Knob ``record_changes`` records each saved-again (``update``) and deleted (``delete``) user or
book; ``delete_delay`` sleeps that many seconds per deleted user (a slow revert).
"""

import os
import time

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from tests.testapp.models import Book, Knob, SignalRecord

User = get_user_model()


@receiver(pre_save, sender=User, dispatch_uid="testapp.pre_save")
def on_pre_save(sender, instance, raw=False, **kwargs):
    if "boom" in instance.username:
        raise RuntimeError(f"receiver refused {instance.username}")
    if "die" in instance.username:
        marker = Knob.get("die_file")
        if Knob.get("always_die") or (marker and consume(marker)):
            os._exit(17)
    delay = float(Knob.get("row_delay") or 0)
    if delay:
        time.sleep(delay)
    if instance.pk is None and Knob.get("record_signals"):
        SignalRecord.objects.create(username=instance.username, signal="pre", pid=os.getpid())


@receiver(post_save, sender=User, dispatch_uid="testapp.post_save")
def on_post_save(sender, instance, created, raw=False, **kwargs):
    if created and Knob.get("record_signals"):
        SignalRecord.objects.create(username=instance.username, signal="post", pid=os.getpid())
    if not created and Knob.get("record_changes"):
        SignalRecord.objects.create(username=instance.username, signal="update", pid=os.getpid())


@receiver(post_delete, sender=User, dispatch_uid="testapp.user_post_delete")
@receiver(post_delete, sender=Book, dispatch_uid="testapp.book_post_delete")
def on_post_delete(sender, instance, **kwargs):
    if not Knob.get("record_changes"):
        return
    delay = float(Knob.get("delete_delay") or 0)
    if delay:
        time.sleep(delay)
    name = instance.isbn if isinstance(instance, Book) else instance.username
    SignalRecord.objects.create(username=name, signal="delete", pid=os.getpid())


def consume(path):
    """Delete the file: whether this process was the one to do it."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


@receiver(post_save, sender=Book, dispatch_uid="testapp.book_post_save")
def on_book_saved(sender, instance, created, raw=False, **kwargs):
    if Knob.get("record_signals"):
        SignalRecord.objects.create(
            username=instance.isbn, signal="post" if created else "update", pid=os.getpid()
        )
