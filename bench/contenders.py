"""One contender, run once, in a process of its own: ``python -m bench.child SPEC``.

Every contender creates the same users from the same CSV file; all but ``bulk_create`` go
through ``save()``, so the workload's ``pre_save`` receiver and the demo's ``post_save``
receiver (a Profile per user) run for each row. The file is read before the clock starts for
the contenders that need its rows in memory (loop, baseline, ceiling, import-export,
bulk_create); bulkadmin reads it itself (its create phase), and ``bulkimport-<W>w`` times the
whole command from the start of its interpreter to its exit.

This module imports nothing of Django's at import time: the ceiling's spawned processes
unpickle :func:`ceiling_worker` from it before they set Django up.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

ROOT = Path(__file__).resolve().parent.parent
USER_FIELDS = ("username", "email", "first_name", "last_name")
#: Rows per transaction in the ceiling's processes: bulkadmin's default chunk size.
CEILING_BATCH = 100
#: The ceiling's start method: every process a fresh interpreter that sets Django up itself, the
#: processes starting in parallel (forkserver would start its server first, serially).
CEILING_START_METHOD: Final = "spawn"
#: Tables the contenders write, emptied before each run (plus every table of bulkadmin's models).
WRITTEN_TABLES = (
    "auth_user",
    "auth_user_groups",
    "auth_user_user_permissions",
    "mysite_profile",
    "django_admin_log",
)


@dataclass(frozen=True)
class BulkadminSpec:
    workers: int
    threads: int | None  # None: picked while the job runs, the default
    chunk_size: int | None


SPEC = r"-(?P<w>\d+)w(?:-(?P<t>\d+)t)?(?:-c(?P<c>\d+))?$"
BULKADMIN_RE = re.compile(r"^bulkadmin" + SPEC)
BULKIMPORT_RE = re.compile(r"^bulkimport" + SPEC)


def _spec(pattern: re.Pattern[str], name: str) -> BulkadminSpec | None:
    match = pattern.match(name)
    if match is None or int(match["w"]) < 1:
        return None
    return BulkadminSpec(
        workers=int(match["w"]),
        threads=int(match["t"]) if match["t"] else None,
        chunk_size=int(match["c"]) if match["c"] else None,
    )


def parse_bulkadmin(name: str) -> BulkadminSpec | None:
    """``bulkadmin-2w``, ``bulkadmin-2w-16t``, ``bulkadmin-2w-c500``, ``bulkadmin-2w-8t-c250``."""
    return _spec(BULKADMIN_RE, name)


CELERY_RE = re.compile(r"^celery-(?P<w>\d+)w$")


def parse_celery(name: str) -> int | None:
    """``celery-2w``: the number of worker processes (each ``--concurrency 1``), else None."""
    match = CELERY_RE.match(name)
    return int(match["w"]) if match else None


CEILING_RE = re.compile(r"^ceiling(?:-(?P<n>\d+)p)?$")


def parse_ceiling(name: str) -> int | None:
    """``ceiling-3p``: 3 processes; ``ceiling``: one per core; else None."""
    match = CEILING_RE.match(name)
    if match is None:
        return None
    processes = int(match["n"]) if match["n"] else os.cpu_count() or 1
    return processes if processes >= 1 else None


def parse_bulkimport(name: str) -> BulkadminSpec | None:
    """``bulkimport-2w``, ``bulkimport-4w-16t``, ``bulkimport-2w-c50``: the whole ``manage.py
    bulkimport --workers W [--threads T] [--chunk-size C]`` command, else None."""
    return _spec(BULKIMPORT_RE, name)


def is_known(name: str) -> bool:
    return (
        name in SIMPLE
        or parse_bulkadmin(name) is not None
        or parse_celery(name) is not None
        or parse_ceiling(name) is not None
        or parse_bulkimport(name) is not None
    )


def read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            {**{k: row[k] for k in USER_FIELDS}, "is_active": row["is_active"] == "true"}
            for row in csv.DictReader(handle)
        ]


# ---- the contenders --------------------------------------------------------------------------
def create_user(row: dict[str, Any]) -> int:
    """The unit of work of the loop and of the baseline recipe."""
    from django.contrib.auth import get_user_model

    return int(get_user_model().objects.create(**row).pk)


def run_loop(path: Path) -> dict[str, float]:
    rows = read_rows(path)
    started = time.perf_counter()
    for row in rows:
        create_user(row)
    return {"run": time.perf_counter() - started}


def run_baseline(path: Path) -> dict[str, float]:
    """The recipe people use today, as they write it: one future per row, all kept."""
    from django.db import connections

    rows = read_rows(path)
    started = time.perf_counter()
    connections.close_all()
    with ProcessPoolExecutor(max_workers=4) as executor:
        futures = [executor.submit(create_user, row) for row in rows]
        for future in futures:
            future.result()
    return {"run": time.perf_counter() - started}


def ceiling_worker(rows: list[dict[str, Any]]) -> None:
    """One of the ceiling's processes: Django set up, then only ``create()`` in atomic batches."""
    import django

    django.setup()
    from django.db import connections, transaction

    try:
        for i in range(0, len(rows), CEILING_BATCH):
            with transaction.atomic():
                for row in rows[i : i + CEILING_BATCH]:
                    create_user(row)  # User.objects.create(**row), as loop and baseline do
    finally:
        connections.close_all()


def split_rows(rows: list[dict[str, Any]], parts: int) -> list[list[dict[str, Any]]]:
    """``parts`` contiguous slices whose lengths differ by at most one (empty ones dropped)."""
    size, extra = divmod(len(rows), parts)
    slices, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        slices.append(rows[start:end])
        start = end
    return [s for s in slices if s]


def run_ceiling(path: Path, processes: int) -> dict[str, float]:
    """The least a save()-path importer can do with ``processes`` processes.

    The rows are read and split here, before the clock; then ``processes`` spawned processes each
    set Django up and create their slice with ``User.objects.create(**row)`` (what ``loop`` and
    ``baseline`` do per row, so the receivers run) in transactions of ``CEILING_BATCH`` rows. No
    job, no row tracking, no outcomes written: timed from here to the last process joined.
    """
    from django.db import connections

    slices = split_rows(read_rows(path), processes)
    context = multiprocessing.get_context(CEILING_START_METHOD)
    started = time.perf_counter()
    connections.close_all()  # no child may share this process's sockets
    children = [context.Process(target=ceiling_worker, args=(rows,)) for rows in slices]
    for child in children:
        child.start()
    for child in children:
        child.join()
    elapsed = time.perf_counter() - started
    failed = [child.exitcode for child in children if child.exitcode != 0]
    if failed:
        raise RuntimeError(
            f"ceiling: {len(failed)} of {len(children)} processes failed (exit codes {failed})"
        )
    return {"run": elapsed}


def run_command(command: list[str], expect: int = 0) -> dict[str, float]:
    """A whole command, in this process's environment (the bench's settings, database and
    workload), timed from its process start to its exit; any exit code but ``expect`` fails it.

    Its output goes to a file, not a pipe: reading a pipe to its end would also wait for any
    process that inherited it and outlives the command (a pool's forkserver that is still
    setting Django up when the command exits early), which a shell running the command does not.
    """
    with tempfile.TemporaryFile() as output_file:
        started = time.perf_counter()
        done = subprocess.run(
            command, cwd=ROOT, env=dict(os.environ), stdout=output_file, stderr=subprocess.STDOUT, check=False
        )
        elapsed = time.perf_counter() - started
        output_file.seek(0)
        text = output_file.read().decode(errors="replace")
    if done.returncode != expect:
        output = text.strip().splitlines()
        raise RuntimeError(
            f"{' '.join(command)} exited with code {done.returncode}:\n" + "\n".join(output[-30:])
        )
    return {"run": elapsed}


def run_loop_command(path: Path) -> dict[str, float]:
    """The plain loop as a script a user runs (``bench/loop_command.py``), timed whole."""
    return run_command([sys.executable, "-m", "bench.loop_command", str(path)])


def run_bulkimport(path: Path, spec: BulkadminSpec) -> dict[str, float]:
    """``python manage.py bulkimport FILE --workers W --no-progress`` as a user runs it.

    This process's environment is the bench's (``DJANGO_SETTINGS_MODULE=bench.settings``, the
    bench ``DATABASE_URL``, ``BENCH_WORKLOAD``), so the command and its pool workers see it too.
    Timed from the command's process start to its exit: interpreter start, Django setup,
    validation, create_job and the run. Any exit code but 0 fails the measurement.
    """
    command = [sys.executable, "manage.py", "bulkimport", str(path), "--workers", str(spec.workers)]
    if spec.threads:
        command += ["--threads", str(spec.threads)]
    if spec.chunk_size:
        command += ["--chunk-size", str(spec.chunk_size)]
    command.append("--no-progress")
    return run_command(command)


def run_startup(path: Path) -> dict[str, float]:
    """The interpreter's start and ``django.setup()``, nothing else: what every whole command
    here pays before its first row (``bench/loop_command.py`` starts the same way)."""
    return run_command([sys.executable, "-c", "import django; django.setup()"])


#: A row the users importer refuses (its e-mail address), appended by ``bulkimport-refused``.
BAD_ROW = "zz-refused,not-an-e-mail,Bad,Row,,true,\n"


def run_bulkimport_refused(path: Path) -> dict[str, float]:
    """``bulkimport`` with default options on the same rows and one bad row after them: the
    whole file is read and validated, and the job's rows saved, before the command refuses it
    (exit 2) and deletes them. So it times everything the default command does before its first
    row is imported; the difference to the whole command is the import itself."""
    refused = path.with_name(f"{path.stem}-refused.csv")
    if not refused.exists():
        refused.write_text(path.read_text(encoding="utf-8") + BAD_ROW, encoding="utf-8")
    return run_command([sys.executable, "manage.py", "bulkimport", str(refused), "--no-progress"], expect=2)


def run_import_export(path: Path) -> dict[str, float]:
    import tablib
    from django.contrib.auth import get_user_model
    from import_export import resources

    class UserResource(resources.ModelResource):
        class Meta:
            model = get_user_model()
            fields = (*USER_FIELDS, "is_active")
            import_id_fields = ("username",)

    dataset = tablib.Dataset(headers=[*USER_FIELDS, "is_active"])
    for row in read_rows(path):
        dataset.append([row[k] for k in USER_FIELDS] + [int(row["is_active"])])
    resource = UserResource()
    started = time.perf_counter()
    result = resource.import_data(dataset, dry_run=False, raise_errors=True)
    elapsed = time.perf_counter() - started
    if result.has_errors() or result.has_validation_errors():
        raise RuntimeError("django-import-export reported errors")
    return {"run": elapsed}


def run_bulk_create(path: Path) -> dict[str, float]:
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    rows = read_rows(path)
    started = time.perf_counter()
    for i in range(0, len(rows), 1000):
        user_model.objects.bulk_create([user_model(**row) for row in rows[i : i + 1000]])
    return {"run": time.perf_counter() - started}


def run_bulkadmin(path: Path, spec: BulkadminSpec) -> dict[str, float]:
    """The path ``bulkimport`` takes: create_job (validation, rows saved), then the runner."""
    from bulkadmin.engine import JobRunner
    from bulkadmin.jobs import create_job

    started = time.perf_counter()
    job, report = create_job(path, path.name, workers=spec.workers, threads=spec.threads)
    created = time.perf_counter()
    if job is None:
        raise RuntimeError(f"create_job saved no job: {report.file_error or report.errors[:3]}")
    job = JobRunner(job.pk, workers=spec.workers, threads=spec.threads, chunk_size=spec.chunk_size).run()
    finished = time.perf_counter()
    if job.failed or job.pending:
        raise RuntimeError(f"job {job.pk}: {job.failed} failed, {job.pending} pending; {job.error}")
    return {"create": created - started, "run": finished - created, "total": finished - started}


def start_celery_workers(count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` separate ``celery -A mysite worker --concurrency 1`` processes (standing for hosts).

    They inherit this process's environment (``DJANGO_SETTINGS_MODULE=bench.settings``, the bench
    database, ``BENCH_WORKLOAD``), so the workload receiver is connected in their pool children.
    Each runs in its own session so that it and its pool child can be killed as a group; they stay
    this process's children, so the parent's memory sampling counts them.
    """
    log_dir = Path(os.environ.get("BENCH_WORK_DIR", "bench/.work"))
    log_dir.mkdir(parents=True, exist_ok=True)
    started = []
    for index in range(count):
        command = [sys.executable, "-m", "celery", "-A", "mysite", "worker", "--concurrency", "1"]
        command += ["--pool", "prefork", "--loglevel", "WARNING"]
        command += ["--hostname", f"bench{index}-{os.getpid()}@%h"]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        with (log_dir / f"celery-{index}.log").open("wb") as log:
            started.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
            )
    return started


def wait_for_workers(count: int, processes: list[subprocess.Popen[bytes]], timeout: float = 120) -> None:
    """Until all ``count`` workers answer a broadcast ping (they consume the queue by then)."""
    from mysite.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("a Celery worker exited while starting (see bench/.work/celery-*.log)")
        if len(app.control.ping(timeout=0.5)) >= count:
            return
    raise RuntimeError(f"{count} Celery workers not ready after {timeout:.0f}s")


def stop_celery_workers(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the worker and its pool child
    for process in processes:
        process.wait(timeout=30)


def flush_broker() -> None:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        client.flushdb()
    finally:
        client.close()


def run_celery(path: Path, workers: int) -> dict[str, float]:
    """create_job as ``bulkimport`` does, then the Celery launcher, timed until the job is final.

    The workers are started, and answer a ping, before the clock starts: a deployment's workers
    are already running when a job is confirmed.
    """
    from bulkadmin.jobs import create_job
    from bulkadmin.models import ImportJob, JobStatus
    from bulkadmin.tasks import launch_celery

    flush_broker()
    processes = start_celery_workers(workers)
    try:
        wait_for_workers(workers, processes)
        started = time.perf_counter()
        job, report = create_job(path, path.name, workers=workers)
        created = time.perf_counter()
        if job is None:
            raise RuntimeError(f"create_job saved no job: {report.file_error or report.errors[:3]}")
        ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED)
        launch_celery(job)
        while not job.is_final:
            if any(p.poll() is not None for p in processes):
                raise RuntimeError("a Celery worker died during the run (see bench/.work/celery-*.log)")
            time.sleep(0.02)
            job.refresh_from_db()
        finished = time.perf_counter()
    finally:
        stop_celery_workers(processes)
        flush_broker()
    if job.status != JobStatus.SUCCEEDED or job.failed:
        raise RuntimeError(f"job {job.pk}: {job.status}, {job.failed} failed; {job.error}")
    return {"create": created - started, "run": finished - created, "total": finished - started}


SIMPLE = {
    "loop": run_loop,
    "loop-command": run_loop_command,
    "baseline": run_baseline,
    "import-export": run_import_export,
    "bulk_create": run_bulk_create,
    "startup": run_startup,
    "bulkimport-refused": run_bulkimport_refused,
}
#: Contenders that import nothing: they time the parts of a whole command (``bench/run.py``
#: shows them as where the time goes, not as rates).
PHASES = frozenset({"startup", "bulkimport-refused"})


def run(name: str, path: Path, rows: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from mysite.models import Profile

    reset_database()
    spec, celery_workers = parse_bulkadmin(name), parse_celery(name)
    ceiling, bulkimport = parse_ceiling(name), parse_bulkimport(name)
    if spec:
        timings = run_bulkadmin(path, spec)
    elif celery_workers:
        timings = run_celery(path, celery_workers)
    elif ceiling:
        timings = run_ceiling(path, ceiling)
    elif bulkimport:
        timings = run_bulkimport(path, bulkimport)
    else:
        timings = SIMPLE[name](path)
    users = get_user_model().objects.count()
    profiles = Profile.objects.count()
    expected_users = 0 if name in PHASES else rows
    expected_profiles = 0 if name == "bulk_create" else expected_users
    if users != expected_users or profiles != expected_profiles:
        raise RuntimeError(
            f"{name}: {users} users and {profiles} profiles, "
            f"expected {expected_users} and {expected_profiles}"
        )
    return {"timings": timings, "pid": os.getpid()}


def written_tables() -> list[str]:
    """``WRITTEN_TABLES`` and bulkadmin's tables, those that exist in the database."""
    from django.apps import apps
    from django.db import connection

    bulkadmin = [
        m._meta.db_table for m in apps.get_app_config("bulkadmin").get_models(include_auto_created=True)
    ]
    existing = set(connection.introspection.table_names())
    return [t for t in dict.fromkeys([*WRITTEN_TABLES, *bulkadmin]) if t in existing]


def reset_database() -> None:
    """Empty the tables the contenders write (a fresh SQLite file needs nothing)."""
    from django.db import connection

    if connection.vendor not in ("postgresql", "mysql"):
        return
    quote = connection.ops.quote_name
    tables = [quote(t) for t in written_tables()]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
            return
        # MySQL/MariaDB: TRUNCATE (which also resets AUTO_INCREMENT) refuses a table that foreign
        # keys point at unless the checks are off for this session.
        cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        try:
            for table in tables:
                cursor.execute(f"TRUNCATE TABLE {table}")
        finally:
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
