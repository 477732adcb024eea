"""The kind of receiver real sites have: it must run for users created in bulk too."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save
from django.dispatch import receiver

from mysite.models import Profile


@receiver(post_save, sender=get_user_model(), dispatch_uid="mysite.create_profile")
def create_profile(sender: type, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if created and not raw:
        Profile.objects.create(
            user=instance,
            display_name=instance.get_full_name(),
            created_by_pid=os.getpid(),
        )
