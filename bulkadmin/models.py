"""An import job, its chunks and its failed rows: the chunk is the unit of work and of
bookkeeping, the job's counters the progress.

A confirmed file's valid rows are stored a chunk at a time (one record per ``CHUNK_SIZE`` rows,
secrets sealed). A worker commits a chunk's objects and the chunk's outcome in one
transaction; only a row that fails gets a record of its own (``ImportRow``), which staff
correct, download and rerun.

A job confirmed in the admin starts ``validated`` but not ``prepared``: the request only moves
the upload aside, and the runner, once it has claimed the job, reads the file into chunks
(invalid rows straight into failed rows) before it imports them. ``bulkimport`` saves the
chunks itself, holding the job ``preparing`` meanwhile.

The job's whole lifecycle (queue, claim, beat, cancel, finish, mark stale, revive) lives on its
queryset and model; launchers and runners only call it.

```
 preparing ──rows saved──> validated ──launch──> queued ──claim──> running ──no row pending──> succeeded
                                                   │                │   │            (or finished with errors)
                                                   │ stale heartbeat│   │ cancel
                                                   └──────────────> crashed      cancelling ──> cancelled
                                                                       │                           │
                                                                       └──resume──> queued <─resume┘
```
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from bulkadmin import conf
from bulkadmin.vendors import write_turn


class JobStatus(models.TextChoices):
    #: Its rows are being saved (confirm): nothing may start it yet.
    PREPARING = "preparing", _("Preparing")
    VALIDATED = "validated", _("Validated")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    CANCELLING = "cancelling", _("Cancelling")
    CANCELLED = "cancelled", _("Cancelled")
    SUCCEEDED = "succeeded", _("Succeeded")
    FINISHED_WITH_ERRORS = "finished_with_errors", _("Finished with errors")
    CRASHED = "crashed", _("Crashed")


class JobKind(models.TextChoices):
    """What a job does to its objects: each kind runs on the same engine."""

    IMPORT = "import", pgettext_lazy("kind of job", "Import")
    #: A bulk change of selected objects through ``save()`` (rows: the objects).
    CHANGE = "change", pgettext_lazy("kind of job", "Bulk change")
    #: Undoes another job: deletes what it created, restores what it changed.
    REVERT = "revert", pgettext_lazy("kind of job", "Revert")


class StartedVia(models.TextChoices):
    """Who started a job, which decides its rights: a person has theirs, the command line all."""

    PERSON = "person", _("a person")
    COMMAND_LINE = "command_line", _("the command line")


class Statuses:
    """Every group of statuses, defined once."""

    #: A runner owns the job; a stale heartbeat means it died.
    LIVE = frozenset({JobStatus.RUNNING, JobStatus.CANCELLING})
    #: Live, or handed to a launcher (heartbeat set at hand-off): a runner that never claimed a
    #: queued job leaves it stale too, and so resumable. Not deletable from under its runner.
    WATCHED = LIVE | {JobStatus.QUEUED}
    #: No runner will touch the job again unless someone resumes or reruns it.
    SETTLED = frozenset(
        {JobStatus.CANCELLED, JobStatus.SUCCEEDED, JobStatus.FINISHED_WITH_ERRORS, JobStatus.CRASHED}
    )
    #: Settled for good: nothing pending that a runner could still do, or given up (cancelled).
    FINAL = SETTLED - {JobStatus.CRASHED}
    #: A runner may claim the job: new, handed off, crashed, or cancelled with rows still pending.
    STARTABLE = frozenset({JobStatus.VALIDATED, JobStatus.QUEUED, JobStatus.CRASHED, JobStatus.CANCELLED})
    #: A launcher may hand the job off. Not QUEUED: a second click must not start a second runner.
    LAUNCHABLE = STARTABLE - {JobStatus.QUEUED}
    #: No runner works on the job, so a cancel ends it at once.
    IDLE = frozenset({JobStatus.VALIDATED, JobStatus.QUEUED, JobStatus.CRASHED})


#: ``runner_host`` of a job whose chunks run on workers of a queue (no single runner process).
CELERY_RUNNER = "celery"

STALLED_MESSAGE = _(
    "Stalled: no chunk has moved on the Celery workers for a while (workers down or the queue "
    "stuck). Resume the job to send its pending rows again."
)
DEAD_RUNNER_MESSAGE = _("The runner stopped sending heartbeats; resume the job to finish its pending rows.")


def stale_before() -> Any:
    return timezone.now() - timedelta(seconds=float(conf.get("STALE_AFTER_SECONDS")))


class ImportJobQuerySet(models.QuerySet["ImportJob"]):
    """The job's lifecycle: every change of status is one conditional UPDATE here.

    Each method filters on the states its transition starts from, so a transition that lost a
    race (a Resume clicked while a runner finished) changes nothing and returns 0.
    """

    def stale(self) -> ImportJobQuerySet:
        """Jobs a runner claims to own but whose heartbeat stopped: the runner died."""
        return self.filter(status__in=Statuses.WATCHED).filter(
            Q(heartbeat_at__lt=stale_before()) | Q(heartbeat_at__isnull=True)
        )

    def startable(self) -> ImportJobQuerySet:
        """Jobs a runner may claim; a cancelled one only while rows are pending (or unread), and
        never one that was reverted since: resuming it would import rows its revert missed."""
        return (
            self.filter(status__in=Statuses.STARTABLE)
            .exclude(status=JobStatus.CANCELLED, processed__gte=F("total"), prepared=True)
            .filter(reverted_by=None)
        )

    def owned_by(self, owner: Owner) -> ImportJobQuerySet:
        return self.filter(runner_pid=owner.pid, runner_host=owner.host)

    def queue(self) -> int:
        """Hand a job to a launcher; the heartbeat starts so a launch that never runs turns stale."""
        with write_turn(self.db):
            return (
                self.startable()
                .filter(status__in=Statuses.LAUNCHABLE)
                .update(status=JobStatus.QUEUED, error="", heartbeat_at=timezone.now(), finished_at=None)
            )

    def fail_launch(self, error: str) -> int:
        with write_turn(self.db):
            return self.filter(status=JobStatus.QUEUED).update(status=JobStatus.CRASHED, error=error)

    def claim(self, owner: Owner) -> int:
        """A runner takes the job (a dead runner's too, once marked crashed)."""
        self.mark_stale_crashed()
        now = timezone.now()
        with write_turn(self.db):
            return self.startable().update(
                status=JobStatus.RUNNING,
                runner_pid=owner.pid,
                runner_host=owner.host,
                heartbeat_at=now,
                started_at=Coalesce("started_at", now),
                finished_at=None,
                error="",
            )

    def beat(self, owner: Owner | None = None) -> int:
        with write_turn(self.db):
            jobs = self.owned_by(owner) if owner is not None else self
            return jobs.update(heartbeat_at=timezone.now())

    def request_cancel(self) -> int:
        """A job no runner works on ends at once; a running one is asked to stop."""
        with write_turn(self.db):
            idle = self.filter(status__in=Statuses.IDLE).update(
                status=JobStatus.CANCELLED, finished_at=timezone.now(), runner_pid=None
            )
            return idle + self.filter(status=JobStatus.RUNNING).update(status=JobStatus.CANCELLING)

    def acknowledge_cancel(self) -> int:
        """A worker that saw the request stops: the job is cancelled (and resumable)."""
        with write_turn(self.db):
            return self.filter(status=JobStatus.CANCELLING).update(
                status=JobStatus.CANCELLED, finished_at=timezone.now(), runner_pid=None
            )

    def finish(self, owner: Owner | None, stop_reason: str = "") -> int:
        """A runner's end: final when no row is pending, else cancelled or crashed (resumable)."""
        now = timezone.now()
        done = Q(processed__gte=F("total"), prepared=True)
        jobs = self.owned_by(owner) if owner is not None else self
        with write_turn(self.db):
            return jobs.filter(status__in=Statuses.LIVE).update(
                status=Case(
                    When(done & Q(failed__gt=0), then=Value(JobStatus.FINISHED_WITH_ERRORS)),
                    When(done, then=Value(JobStatus.SUCCEEDED)),
                    When(status=JobStatus.CANCELLING, then=Value(JobStatus.CANCELLED)),
                    default=Value(JobStatus.CRASHED),
                ),
                error=Case(
                    When(done | Q(status=JobStatus.CANCELLING), then=Value("")),
                    default=Value(stop_reason or str(_("Rows are still pending; resume the job."))),
                ),
                runner_pid=None,
                finished_at=now,
                heartbeat_at=now,
            )

    def finish_if_done(self) -> int:
        """Queue workers have no runner: the chunk that completes the job finishes it."""
        return self.filter(processed__gte=F("total")).finish(None)

    def mark_stale_crashed(self) -> int:
        """A dead runner's job is crashed (resumable); one it was asked to cancel is cancelled."""
        with write_turn(self.db):  # on SQLite, not starved by the workers' commits
            return self.stale().update(
                status=Case(
                    When(status=JobStatus.CANCELLING, then=Value(JobStatus.CANCELLED)),
                    default=Value(JobStatus.CRASHED),
                ),
                runner_pid=None,
                error=Case(
                    When(status=JobStatus.CANCELLING, then=Value("")),
                    When(runner_host=CELERY_RUNNER, then=Value(str(STALLED_MESSAGE))),
                    default=Value(str(DEAD_RUNNER_MESSAGE)),
                ),
            )

    def hand_off(self, owner: Owner) -> int:
        """A runner that prepared a job's rows passes it on to a launcher that runs elsewhere."""
        with write_turn(self.db):
            return (
                self.owned_by(owner)
                .filter(status=JobStatus.RUNNING)
                .update(status=JobStatus.QUEUED, runner_pid=None, runner_host="", heartbeat_at=timezone.now())
            )

    def revive(self, owner: Owner) -> int:
        """Take back a job wrongly marked crashed: its runner or a queued chunk is alive after all.

        Conditional on the job still being crashed, so it loses to a Resume clicked meanwhile.
        """
        with write_turn(self.db):
            return self.filter(status=JobStatus.CRASHED).update(
                status=JobStatus.RUNNING,
                error="",
                heartbeat_at=timezone.now(),
                finished_at=None,
                runner_pid=owner.pid,
                runner_host=owner.host,
            )


@dataclass(frozen=True)
class Owner:
    """Who runs a job: a runner process, or (pid None) the workers of a queue."""

    pid: int | None
    host: str

    @classmethod
    def this_process(cls) -> Owner:
        return cls(os.getpid(), socket.gethostname()[:255])


#: The workers of a Celery queue, as one owner.
QUEUE_WORKERS = Owner(None, CELERY_RUNNER)


class ChunkStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DONE = "done", _("Done")


class RowStatus(models.TextChoices):
    FAILED = "failed", _("Failed")


class ImportJob(models.Model):
    importer = models.CharField(_("importer"), max_length=200)
    kind = models.CharField(_("kind"), max_length=12, choices=JobKind.choices, default=JobKind.IMPORT)
    status = models.CharField(
        _("status"), max_length=24, choices=JobStatus.choices, default=JobStatus.VALIDATED
    )
    source_name = models.CharField(_("source file"), max_length=255, blank=True)
    options = models.JSONField(_("options"), default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("started by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    #: Whose rights the job runs with: a person's (none once their account is deleted), or the
    #: command line's (all). Never derived from ``created_by`` being empty.
    started_via = models.CharField(
        _("started via"), max_length=16, choices=StartedVia.choices, default=StartedVia.PERSON
    )
    parent = models.ForeignKey(
        "self",
        verbose_name=_("rerun of"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reruns",
    )
    #: The job a revert job undoes.
    reverts = models.ForeignKey(
        "self",
        verbose_name=_("reverts"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reverted_by",
    )
    #: Whether the job's chunks say, per row, what it created and what it changed from what
    #: (``ImportChunk.undo``): jobs from before that was recorded cannot be reverted.
    records_undo = models.BooleanField(_("revertible"), default=True, editable=False)
    #: The site the job was started on ("https://example.com/"), for links in its emails.
    site_url = models.CharField(_("site"), max_length=255, blank=True)
    #: The confirmed upload the job reads its rows from; unique, so a confirm counts once.
    upload_id = models.CharField(
        _("upload"), max_length=32, null=True, blank=True, unique=True, editable=False
    )
    #: False until the runner has read the upload into chunks (and its invalid rows into
    #: failed rows); until then ``total`` counts the rows read so far.
    prepared = models.BooleanField(_("rows read"), default=True)
    #: Invalid rows as the report counted them, and as the runner found them reading the upload:
    #: the job page says how many changed in between.
    reported_invalid = models.PositiveIntegerField(_("invalid in the report"), null=True, blank=True)
    read_invalid = models.PositiveIntegerField(_("invalid when read"), null=True, blank=True)
    #: How the file's columns were mapped to the importer's (``bulkadmin.columns``).
    column_map = models.JSONField(_("column mapping"), default=dict, blank=True)
    #: Emails to new users ("Email new users a link…"): sent and failed counted after each
    #: commit, skipped (no address) in the row's transaction.
    emails_sent = models.PositiveIntegerField(_("emails sent"), default=0)
    emails_failed = models.PositiveIntegerField(_("emails not sent"), default=0)
    emails_skipped = models.PositiveIntegerField(_("users without an email address"), default=0)
    total = models.PositiveIntegerField(_("rows"), default=0)
    processed = models.PositiveIntegerField(_("processed"), default=0)
    succeeded = models.PositiveIntegerField(_("succeeded"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    workers = models.PositiveSmallIntegerField(_("worker processes"), null=True, blank=True)
    threads = models.PositiveSmallIntegerField(_("threads per worker"), null=True, blank=True)
    runner_pid = models.PositiveIntegerField(_("runner pid"), null=True, blank=True)
    runner_host = models.CharField(_("runner host"), max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    objects = ImportJobQuerySet.as_manager()

    class Meta:
        verbose_name = _("import job")
        verbose_name_plural = _("import jobs")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="bulkadmin_job_live")]
        #: Staff see and act on their own jobs; this shows (and lets act on) everyone's.
        permissions = [("view_all_importjobs", _("Can view every import job"))]

    def __str__(self) -> str:
        kind = JobKind(self.kind).label if self.kind in JobKind.values else self.kind
        return f"{kind} #{self.pk} ({self.source_name or self.importer})"

    def change_description(self) -> str:
        """A bulk change's change, as ``bulkchange`` would write it ("is_active=false; groups+Support")."""
        change = self.options.get("change") or {}
        parts = [f"{name}={value}" for name, value in (change.get("set") or {}).items()]
        parts += [f"{name}+{';'.join(values)}" for name, values in (change.get("add") or {}).items()]
        parts += [f"{name}−{';'.join(values)}" for name, values in (change.get("remove") or {}).items()]
        return "; ".join(parts)

    def link_base(self) -> str:
        """The site's base URL for this job's emails, without a trailing slash."""
        return (self.site_url or str(conf.get("SITE_URL"))).rstrip("/")

    def started_by(self, user: Any) -> bool:
        return self.created_by_id is not None and self.created_by_id == getattr(user, "pk", None)

    def secrets_erased_at(self) -> Any:
        """When its failed rows' secrets go (``SECRET_RETENTION_SECONDS`` after it ended), or
        None: kept while it runs, or for as long as the job when retention is off."""
        retention = conf.get("SECRET_RETENTION_SECONDS")
        if retention is None or self.finished_at is None or not self.is_settled:
            return None
        return self.finished_at + timedelta(seconds=float(retention))

    @property
    def is_final(self) -> bool:
        return self.status in Statuses.FINAL

    @property
    def is_settled(self) -> bool:
        return self.status in Statuses.SETTLED

    @property
    def is_stale(self) -> bool:
        return self.status in Statuses.WATCHED and (
            self.heartbeat_at is None or self.heartbeat_at < stale_before()
        )

    @property
    def is_resumable(self) -> bool:
        """Crashed (or about to be seen so), or cancelled with rows still pending."""
        unfinished = self.pending > 0 or not self.prepared
        return (
            unfinished
            and (self.status in (JobStatus.CRASHED, JobStatus.CANCELLED) or self.is_stale)
            and not self.reverted_by.exists()
        )

    @property
    def is_cancellable(self) -> bool:
        return self.status in Statuses.IDLE or self.status == JobStatus.RUNNING

    @property
    def pending(self) -> int:
        return self.total - self.processed

    @property
    def turned_invalid(self) -> int:
        """Rows found invalid when read that the report had found valid (at least this many)."""
        return max(0, self._change_since_report())

    @property
    def turned_valid(self) -> int:
        """Rows the report refused that were valid by the time they were read."""
        return max(0, -self._change_since_report())

    def _change_since_report(self) -> int:
        if self.reported_invalid is None or self.read_invalid is None:
            return 0
        return self.read_invalid - self.reported_invalid

    @property
    def jobs(self) -> ImportJobQuerySet:
        """This job as a queryset, for the lifecycle's conditional updates."""
        return ImportJob.objects.filter(pk=self.pk)

    def request_cancel(self) -> bool:
        """Cancel now if no runner works on the job, else ask its runner to stop."""
        changed = bool(self.jobs.request_cancel())
        self.refresh_from_db(fields=["status", "finished_at", "runner_pid"])
        return changed

    def settle_if_stale(self) -> bool:
        """A live job whose runner stopped beating is crashed: say so, so it can be resumed."""
        if self.is_stale and self.jobs.mark_stale_crashed():
            self.refresh_from_db(fields=["status", "runner_pid", "error"])
            return True
        return False


class ImportChunkQuerySet(models.QuerySet["ImportChunk"]):
    def pending(self) -> ImportChunkQuerySet:
        return self.filter(status=ChunkStatus.PENDING)

    def beat(self) -> int:
        """Queue workers say which chunks they are on, so a dead host's chunks can be found."""
        with write_turn(self.db):
            return self.pending().update(heartbeat_at=timezone.now())

    def unstarted(self) -> ImportChunkQuerySet:
        """Pending chunks no queue worker has begun (still in the queue, normally)."""
        return self.pending().filter(heartbeat_at__isnull=True)

    def lost(self, *, unstarted: bool = False) -> ImportChunkQuerySet:
        """Pending chunks a queue worker started and then went silent on (its host died);
        with ``unstarted``, also those no worker ever started (their message was lost too)."""
        silent = Q(heartbeat_at__lt=stale_before())
        return self.pending().filter(silent | Q(heartbeat_at__isnull=True) if unstarted else silent)

    def take_lost(self, *, unstarted: bool = False) -> list[int]:
        """Claim lost chunks for sending again; two workers never both claim one."""
        taken = []
        for pk in self.lost(unstarted=unstarted).values_list("pk", flat=True):
            with write_turn(self.db):
                again = ImportChunk.objects.filter(pk=pk).lost(unstarted=unstarted)
                if again.update(heartbeat_at=timezone.now()):
                    taken.append(pk)
        return taken


class ImportChunk(models.Model):
    """A run of a job's rows, stored together and finished together.

    ``rows`` holds ``[number, {column: value}]`` pairs (secret columns left out), ``secret`` the
    sealed secret columns by row number, erased once the chunk is done. A chunk is normally done
    in one transaction; when a row fails, the rows around it commit in smaller transactions and
    ``done_rows`` lists the rows finished so far, so a retry skips them.
    """

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField(_("chunk"))
    size = models.PositiveIntegerField(_("rows"))
    rows = models.JSONField(_("rows"), default=list)
    secret = models.TextField(_("secret columns"), blank=True, editable=False)
    status = models.CharField(
        _("status"), max_length=12, choices=ChunkStatus.choices, default=ChunkStatus.PENDING
    )
    done_rows = models.JSONField(_("rows done"), default=list, blank=True)
    #: The primary key of the object each imported row created or updated, by row number.
    object_pks = models.JSONField(_("objects"), default=dict, blank=True)
    #: How to undo each imported row, by row number: ``{"created": true}``, or for a row that
    #: changed an existing object ``{"before": {field: value}, "after": {field: value}}``
    #: (``bulkadmin.undo``); ``{}`` or no entry when its importer did not say, so it cannot be
    #: undone. Written in the transaction that saved the objects.
    undo = models.JSONField(_("undo"), default=dict, blank=True)
    #: Beaten by the queue worker on the chunk (Celery): a silent one was lost with its host.
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)

    objects = ImportChunkQuerySet.as_manager()

    class Meta:
        verbose_name = _("import chunk")
        verbose_name_plural = _("import chunks")
        ordering = ["job_id", "number"]  # by the column: "job" would join (and lock) the job
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="bulkadmin_chunk_unique_number")
        ]
        indexes = [models.Index(fields=["job", "status", "number"], name="bulkadmin_chunk_by_status")]

    def __str__(self) -> str:
        return f"Chunk {self.number} of job {self.job_id}"

    def row_numbers(self) -> list[int]:
        return [int(number) for number, _values in self.rows]


class ImportRowQuerySet(models.QuerySet["ImportRow"]):
    def failed(self) -> ImportRowQuerySet:
        return self.filter(status=RowStatus.FAILED)

    def open(self) -> ImportRowQuerySet:
        """Failed rows no rerun has taken yet: what the job still offers to rerun."""
        return self.failed().filter(rerun__isnull=True)

    def with_secrets(self) -> ImportRowQuerySet:
        return self.exclude(secret="")

    def corrected(self) -> ImportRowQuerySet:
        return self.open().filter(corrected=True)

    def search(self, text: str, columns: Iterable[str]) -> ImportRowQuerySet:
        """Rows with ``text`` in one of ``columns`` (or that row number): key lookups work alike
        on every database, where a search of the JSON text would miss escaped characters."""
        match = Q()
        for column in columns:
            match |= Q(**{f"values__{column}__icontains": text})
        if text.isdigit():
            match |= Q(number=int(text))
        return self.filter(match) if match else self.none()


class ImportRow(models.Model):
    """A row that failed: its values, its errors, and its secrets (sealed) for the rerun."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="rows")
    number = models.PositiveIntegerField(_("row"), help_text=_("Line in the source file."))
    values = models.JSONField(_("values"), default=dict)
    #: Secret columns (passwords), encrypted.
    secret = models.TextField(_("secret columns"), blank=True, editable=False)
    status = models.CharField(_("status"), max_length=12, choices=RowStatus.choices, default=RowStatus.FAILED)
    errors = models.JSONField(_("errors"), default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=1)
    #: Staff corrected it since it failed (its errors are cleared then).
    corrected = models.BooleanField(_("corrected"), default=False)
    #: The rerun that took this row; a row goes to one rerun only.
    rerun = models.ForeignKey(
        ImportJob,
        verbose_name=_("rerun in"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="taken_rows",
    )

    objects = ImportRowQuerySet.as_manager()

    class Meta:
        verbose_name = _("import row")
        verbose_name_plural = _("import rows")
        ordering = ["job_id", "number"]  # by the column: "job" would join (and lock) the job
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="bulkadmin_row_unique_number")]
        indexes = [models.Index(fields=["job", "status", "id"], name="bulkadmin_row_by_status")]

    def __str__(self) -> str:
        return f"Row {self.number} of job {self.job_id}"

    @property
    def error_text(self) -> str:
        return error_text(self.errors)


def error_text(errors: dict[str, list[str]]) -> str:
    """A row's errors in one line: "column: message; message"."""
    return "; ".join(
        f"{column}: {message}" if column != "__all__" else message
        for column, messages in errors.items()
        for message in messages
    )


class ColumnMapping(models.Model):
    """A mapping of a file's columns staff confirmed: the next file with the same header for the
    same importer goes straight to its report."""

    importer = models.CharField(_("importer"), max_length=200)
    #: ``bulkadmin.columns.header_key`` of the file's columns.
    headers = models.CharField(_("header"), max_length=64)
    columns = models.JSONField(_("file columns"), default=list)
    mapping = models.JSONField(_("mapping"), default=dict)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("column mapping")
        verbose_name_plural = _("column mappings")
        constraints = [
            models.UniqueConstraint(fields=["importer", "headers"], name="bulkadmin_mapping_unique_header")
        ]

    def __str__(self) -> str:
        return f"{self.importer}: {', '.join(self.columns)}"
