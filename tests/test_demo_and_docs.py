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


def test_the_demo_runs_without_debug_with_its_own_secret_key_and_a_private_database(tmp_path, monkeypatch):
    """Before: DEBUG on and a public SECRET_KEY by default, db.sqlite3 world-readable."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_DEBUG", "DJANGO_SECRET_KEY")}
    code = "import mysite.settings as s; print(s.DEBUG); print(s.SECRET_KEY)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    debug, key = out.stdout.split()
    key_file = ROOT / "var" / "secret_key"
    assert debug == "False"
    assert key == key_file.read_text().strip() and "insecure" not in key and len(key) >= 50
    assert oct(key_file.stat().st_mode & 0o777) == oct(0o600)

    from mysite.settings import database_from_env

    monkeypatch.delenv("DATABASE_URL", raising=False)
    database_from_env(tmp_path / "demo.sqlite3")
    assert oct((tmp_path / "demo.sqlite3").stat().st_mode & 0o777) == oct(0o600)
