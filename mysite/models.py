"""A profile every new user gets from a ``post_save`` receiver, which ``bulk_create`` would skip."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    display_name = models.CharField(max_length=301, blank=True)
    #: The pid of the process that saved the user: shows the rows really ran in parallel.
    created_by_pid = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.display_name or str(self.user)
