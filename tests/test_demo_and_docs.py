"""The demo's setup command and the README stay true to the code."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from bulkadmin import conf
from tests.conftest import ROOT

User = get_user_model()


def demosetup(*args: str) -> str:
    out = StringIO()
    call_command("demosetup", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_demosetup_keeps_an_existing_admin_unless_asked_and_prints_the_url_it_serves():
    first = demosetup("--port", "8100")
    assert "http://127.0.0.1:8100/admin/" in first
    password = re.search(r"password: (\S+)", first)
    assert password and User.objects.get(username="admin").check_password(password.group(1))

    again = demosetup()
    assert "unchanged" in again and "http://127.0.0.1:8000/admin/" in again
    assert User.objects.get(username="admin").check_password(password.group(1))

    reset = re.search(r"password: (\S+)", demosetup("--reset-password"))
    assert reset and reset.group(1) != password.group(1)
    assert User.objects.get(username="admin").check_password(reset.group(1))


def test_the_readme_settings_table_lists_every_setting_and_no_other():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Settings") : readme.index("## How it works")]
    documented = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            documented.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    assert documented == set(conf.DEFAULTS)
