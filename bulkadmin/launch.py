"""Hand-off after the transaction commits: start a runner for a job, away from the web process.

The default launcher starts ``python -m django runbulkjob JOB_ID`` detached: the web process
starts a tiny intermediate interpreter, which starts the runner in a new session and exits at
once; the web process reaps the intermediate, so no zombie is left and the runner outlives a
web worker restart. The web process never forks Django or creates a pool (invariant 2).

Other launchers are small callables too: ``"celery"`` (``bulkadmin.tasks``) fans the job's chunks
out as Celery tasks; ``"tasks"`` (``bulkadmin.jobtasks``) runs the runner as one task of Django's
Tasks framework. They register in ``LAUNCHERS`` under the name ``BULKADMIN["LAUNCHER"]`` uses.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from django.conf import ENVIRONMENT_VARIABLE, settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from bulkadmin import conf
from bulkadmin.models import ImportJob, JobStatus

logger = logging.getLogger("bulkadmin")

Launcher = Callable[[ImportJob], None]

#: Starts the runner in a new session and exits without waiting (``os._exit``: no Popen finalizer).
_INTERMEDIATE = (
    "import os, subprocess, sys\n"
    "subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True)\n"
    "os._exit(0)\n"
)
INTERMEDIATE_TIMEOUT = 30


def log_path(job: ImportJob) -> Path:
    """The runner's stdout and stderr: private, beside the uploads, never served."""
    path = conf.data_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path / f"job-{job.pk}.log"


def settings_module() -> str:
    """The settings the web process runs with (under override_settings, the environment's)."""
    name = settings.SETTINGS_MODULE or os.environ.get(ENVIRONMENT_VARIABLE)
    if not name:
        raise ImproperlyConfigured(
            "The subprocess launcher needs a settings module (DJANGO_SETTINGS_MODULE)."
        )
    return name


def settings_root() -> str:
    """The directory from which the settings module is importable, as the runner's cwd."""
    top = settings_module().split(".")[0]
    spec_file = getattr(importlib.import_module(top), "__file__", None)
    if spec_file is None:
        return str(Path.cwd())
    path = Path(spec_file).resolve()
    # a package's __init__.py is two levels below the root, a plain module one
    return str(path.parent.parent if path.name == "__init__.py" else path.parent)


def runner_environment() -> tuple[dict[str, str], str]:
    root = settings_root()
    env = dict(os.environ)
    env[ENVIRONMENT_VARIABLE] = settings_module()
    cwd = str(Path.cwd())
    first = str(Path(sys.path[0]).resolve()) if sys.path and sys.path[0] else cwd
    entries = [root, first, cwd]
    if env.get("PYTHONPATH"):
        entries.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(entries))
    return env, root


def python_executable() -> str:
    """The Python that runs ``runbulkjob``: ``BULKADMIN["PYTHON"]``, else this interpreter.

    Under uWSGI (and some other servers) ``sys.executable`` is the server's binary, not Python;
    ``manage.py check`` says so (bulkadmin.E006).
    """
    return str(conf.get("PYTHON") or sys.executable)


def runner_command(job: ImportJob) -> list[str]:
    return [python_executable(), "-m", "django", "runbulkjob", str(job.pk)]


class SubprocessLauncher:
    """The default: a detached ``runbulkjob`` (double launch), its output in the job's log file."""

    #: ``bulkimport`` runs such a job itself, in the foreground, rather than launching it.
    runs_in_foreground = True

    def __call__(self, job: ImportJob) -> None:
        env, cwd = runner_environment()
        # Created owner-only: a log may quote row values; never through a planted symlink.
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(log_path(job), flags, 0o600), "ab") as log:
            intermediate = subprocess.Popen(
                [python_executable(), "-c", _INTERMEDIATE, *runner_command(job)],
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        code = intermediate.wait(timeout=INTERMEDIATE_TIMEOUT)
        if code != 0:
            raise RuntimeError(f"The launcher exited with status {code}; see {log_path(job)}.")


launch_subprocess = SubprocessLauncher()

#: Launchers by the name ``BULKADMIN["LAUNCHER"]`` gives; a dotted path to a callable also works.
LAUNCHERS: dict[str, Launcher] = {
    "subprocess": launch_subprocess,
}


def register_launcher(name: str, launcher: Launcher) -> None:
    """The hook for another way to start runners."""
    LAUNCHERS[name] = launcher


#: Launchers imported only when chosen, so their optional dependencies stay optional.
LAZY_LAUNCHERS = {"celery": "bulkadmin.tasks.launch_celery", "tasks": "bulkadmin.jobtasks.launch_task"}


def get_launcher(name: str | None = None) -> Launcher:
    chosen = name or str(conf.get("LAUNCHER"))
    chosen = LAZY_LAUNCHERS.get(chosen, chosen) if chosen not in LAUNCHERS else chosen
    if chosen in LAUNCHERS:
        return LAUNCHERS[chosen]
    if "." in chosen:
        launcher: Launcher = import_string(chosen)
        return launcher
    known = sorted({*LAUNCHERS, *LAZY_LAUNCHERS})
    raise ImproperlyConfigured(
        f"Unknown BULKADMIN['LAUNCHER'] {chosen!r}; known launchers: {', '.join(known)}."
    )


def runs_in_foreground(launcher: Launcher) -> bool:
    """Whether ``bulkimport`` should run the job itself rather than hand it to this launcher."""
    return bool(getattr(launcher, "runs_in_foreground", False))


def launch_job(job: ImportJob) -> bool:
    """Queue a startable job and start its runner; call it after the job's transaction commits.

    Returns False when the job was not startable (already queued by a double click, running,
    or finished). A launcher that fails leaves the job crashed, so staff can resume it.
    """
    if not job.jobs.queue():
        return False
    job.status = JobStatus.QUEUED
    # Rows not read in yet are read where the upload is, on this host: the runner that reads
    # them hands the job on to the configured launcher.
    launcher = get_launcher() if job.prepared else get_launcher("subprocess")
    try:
        launcher(job)
    except Exception as exc:
        logger.exception("Job %s: the runner could not be started.", job.pk)
        job.jobs.fail_launch(f"The runner could not be started: {exc}")
        job.status = JobStatus.CRASHED
        return False
    return True
