"""Prepare the demo: groups the sample file uses, and a superuser whose password is printed."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

DEMO_GROUPS = ["Customers", "Editors", "Support"]


class Command(BaseCommand):
    help = "Create the demo groups and (re)set the demo superuser 'admin' with a new password."

    def handle(self, *args: Any, **options: Any) -> None:
        for name in DEMO_GROUPS:
            Group.objects.get_or_create(name=name)
        password = secrets.token_urlsafe(9)
        user, _ = get_user_model()._default_manager.get_or_create(
            username="admin", defaults={"email": "admin@example.com"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        self.stdout.write(
            self.style.SUCCESS(
                "\n  Demo admin: http://127.0.0.1:8000/admin/\n"
                f"  username: admin\n  password: {password}\n"
                "  Sample file: mysite/sample/users.csv (1,000 users, a few bad rows)\n"
            )
        )
