"""Hostile files, as an attack on a running server used them: each gets a clear message,
writes nothing, and stays within 300 MiB and 10 s of CPU, in the admin and in bulkimport.

Before issue 16 the shared-strings bomb grew the web process by 1.3 GiB over 73 s, keys
by the million by 516 MiB, and empty objects and blank lines burnt a minute of CPU each.
The files are made once per test session (tests/hostile.py): they are too big to commit.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from bulkadmin.models import ImportJob
from tests.conftest import ROOT
from tests.hostile import FILES
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import url

#: What one file may cost: peak memory (for the admin, the growth of its process) and CPU.
MEMORY_MIB = 300
CPU_SECONDS = 10


@pytest.fixture(scope="session")
def hostile_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile")


def hostile_file(directory: Path, name: str) -> Path:
    path = directory / name
    if not path.exists():
        FILES[name][0](path)
    return path


def _status(field: str) -> int:
    """A figure from /proc/self/status, in MiB."""
    found = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    assert found, field
    return int(found.group(1)) // 1024


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(FILES))
def test_in_the_admin(staff_client, hostile_dir, name):
    path = hostile_file(hostile_dir, name)
    users = get_user_model().objects.count()
    with path.open("rb") as handle:
        upload = SimpleUploadedFile(name, handle.read())
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from here
    cpu = time.process_time()
    response = staff_client.post(
        url("add"), {"file": upload, "importer": "bulkadmin.importers.users.UserImporter"}
    )
    cpu = time.process_time() - cpu
    grown = _status("VmHWM") - before
    del upload

    assert response.status_code == 200
    page = response.content.decode()
    assert FILES[name][1] in page.replace("&#x27;", "'"), name
    assert "Traceback" not in page
    assert ImportJob.objects.count() == 0
    assert get_user_model().objects.count() == users
    assert grown <= MEMORY_MIB, f"{name}: the process grew by {grown} MiB"
    assert cpu <= CPU_SECONDS, f"{name}: {cpu:.1f} s of CPU"


@pytest.mark.django_db(transaction=True)  # bulkimport writes its job from another process
@pytest.mark.parametrize("name", sorted(FILES))
def test_in_bulkimport(hostile_dir, name):
    path = hostile_file(hostile_dir, name)
    users = get_user_model().objects.count()
    out, err, cost = (hostile_dir / f"{name}.{suffix}" for suffix in ("out", "err", "cost"))
    # manage.py as a user runs it, noting at exit its own peak memory (a child's rusage would
    # count the pages of the pytest process it was forked from) and CPU.
    measured = (
        "import atexit, os, re, runpy, sys\n"
        "def note():\n"
        "    status = open('/proc/self/status').read()\n"
        "    peak = int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1)) // 1024\n"
        "    times = os.times()\n"
        f"    open({str(cost)!r}, 'w').write(f'{{peak}} {{times.user + times.system}}')\n"
        "atexit.register(note)\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.run(
            [
                sys.executable,
                "-c",
                measured,
                str(ROOT / "manage.py"),
                "bulkimport",
                str(path),
                "--no-progress",
            ],
            stdout=stdout,
            stderr=stderr,
            cwd=ROOT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
            timeout=120,
            check=False,
        )
    stderr_text = err.read_text()
    peak_text, cpu_text = cost.read_text().split()
    peak, cpu = int(peak_text), float(cpu_text)

    assert process.returncode == 2, out.read_text() + stderr_text
    assert FILES[name][1] in stderr_text, stderr_text
    assert "Nothing imported." in stderr_text
    assert "Traceback" not in stderr_text
    assert ImportJob.objects.count() == 0
    assert get_user_model().objects.count() == users
    assert peak <= MEMORY_MIB, f"{name}: bulkimport peaked at {peak} MiB"
    assert cpu <= CPU_SECONDS, f"{name}: {cpu:.1f} s of CPU"
