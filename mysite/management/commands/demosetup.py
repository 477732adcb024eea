"""Prepare the demo: groups the sample file uses, and a superuser whose password is printed once."""

from __future__ import annotations

import secrets
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

DEMO_GROUPS = ["Customers", "Editors", "Support"]


class Command(BaseCommand):
    help = (
        "Create the demo groups and the demo superuser 'admin', printing its password; an existing "
        "admin keeps its password unless --reset-password."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--port", type=int, default=8000, help="The port the demo serves on (for the URL)."
        )
        parser.add_argument(
            "--reset-password", action="store_true", help="Give the existing admin a new password."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for name in DEMO_GROUPS:
            Group.objects.get_or_create(name=name)
        user, created = get_user_model()._default_manager.get_or_create(
            username="admin", defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True}
        )
        lines = [f"\n  Demo admin: http://127.0.0.1:{options['port']}/admin/", "  username: admin"]
        if created or options["reset_password"]:
            password = secrets.token_urlsafe(9)
            user.set_password(password)
            user.save(update_fields=["password"])
            lines.append(f"  password: {password}")
        else:
            lines.append("  password: unchanged (python manage.py demosetup --reset-password for a new one)")
        lines.append("  Sample file: mysite/sample/users.csv (1,000 users, a few bad rows)\n")
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))
