"""An import job and its rows: the rows are the unit of work, the job's counters the progress."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from bulkadmin import conf
from bulkadmin.sqlite_gate import write_turn


class JobStatus(models.TextChoices):
    VALIDATED = "validated", _("Validated")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    CANCELLING = "cancelling", _("Cancelling")
    CANCELLED = "cancelled", _("Cancelled")
    SUCCEEDED = "succeeded", _("Succeeded")
    FINISHED_WITH_ERRORS = "finished_with_errors", _("Finished with errors")
    CRASHED = "crashed", _("Crashed")


#: A runner may own the job in these states; a stale heartbeat in them means the runner died.
LIVE_STATUSES = (JobStatus.RUNNING, JobStatus.CANCELLING)
#: Live, or handed to a launcher (heartbeat set at hand-off): a runner that never claimed a
#: queued job leaves it stale too, and so resumable.
WATCHED_STATUSES = (*LIVE_STATUSES, JobStatus.QUEUED)
#: States a runner may (re)start from.
STARTABLE_STATUSES = (JobStatus.VALIDATED, JobStatus.QUEUED, JobStatus.CRASHED)
#: ``runner_host`` of a job whose chunks run on Celery workers (no single runner process).
CELERY_RUNNER = "celery"
FINAL_STATUSES = (
    JobStatus.CANCELLED,
    JobStatus.SUCCEEDED,
    JobStatus.FINISHED_WITH_ERRORS,
)


class RowStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


def stale_before() -> Any:
    return timezone.now() - timedelta(seconds=float(conf.get("STALE_AFTER_SECONDS")))


class ImportJobQuerySet(models.QuerySet["ImportJob"]):
    def live(self) -> ImportJobQuerySet:
        return self.filter(status__in=LIVE_STATUSES)

    def stale(self) -> ImportJobQuerySet:
        """Jobs a runner claims to own but whose heartbeat stopped: the runner died."""
        return self.filter(status__in=WATCHED_STATUSES).filter(
            Q(heartbeat_at__lt=stale_before()) | Q(heartbeat_at__isnull=True)
        )

    def claimable(self) -> ImportJobQuerySet:
        return self.filter(Q(status__in=STARTABLE_STATUSES) | Q(pk__in=self.stale().values("pk")))

    def mark_stale_crashed(self) -> int:
        """A dead runner's job is crashed (resumable); one it was asked to cancel is cancelled."""
        with write_turn(self.db):  # on SQLite, not starved by the workers' commits
            return self._mark_stale()

    def revive(self, **owner: Any) -> int:
        """Take back a job wrongly marked crashed: its runner or a Celery chunk is alive after all.

        Conditional on the job still being crashed, so it loses to a Resume clicked meanwhile.
        """
        with write_turn(self.db):
            return self.filter(status=JobStatus.CRASHED).update(
                status=JobStatus.RUNNING, error="", heartbeat_at=timezone.now(), finished_at=None, **owner
            )

    def _mark_stale(self) -> int:
        return self.stale().update(
            status=Case(
                When(status=JobStatus.CANCELLING, then=Value(JobStatus.CANCELLED)),
                default=Value(JobStatus.CRASHED),
            ),
            runner_pid=None,
            error=Case(
                When(status=JobStatus.CANCELLING, then=Value("")),
                When(
                    runner_host=CELERY_RUNNER,
                    then=Value(
                        "Stalled: no chunk has moved on the Celery workers for a while (workers "
                        "down or the queue stuck). Resume the job to send its pending rows again."
                    ),
                ),
                default=Value(
                    "The runner stopped sending heartbeats; resume the job to finish its pending rows."
                ),
            ),
        )


class ImportJob(models.Model):
    importer = models.CharField(_("importer"), max_length=200)
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
    parent = models.ForeignKey(
        "self",
        verbose_name=_("rerun of"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reruns",
    )
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

    def __str__(self) -> str:
        return f"Import #{self.pk} ({self.source_name or self.importer})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def is_stale(self) -> bool:
        return self.status in WATCHED_STATUSES and (
            self.heartbeat_at is None or self.heartbeat_at < stale_before()
        )

    @property
    def pending(self) -> int:
        return self.total - self.processed

    def final_status(self) -> JobStatus:
        return JobStatus.FINISHED_WITH_ERRORS if self.failed else JobStatus.SUCCEEDED


class ImportRowQuerySet(models.QuerySet["ImportRow"]):
    def pending(self) -> ImportRowQuerySet:
        return self.filter(status=RowStatus.PENDING)

    def failed(self) -> ImportRowQuerySet:
        return self.filter(status=RowStatus.FAILED)

    def succeeded(self) -> ImportRowQuerySet:
        return self.filter(status=RowStatus.SUCCEEDED)

    def count_attempt(self) -> None:
        self.update(attempts=F("attempts") + 1)

    def search(self, text: str, columns: Iterable[str]) -> ImportRowQuerySet:
        """Rows with ``text`` in one of ``columns`` (or that row number): key lookups work alike
        on SQLite and PostgreSQL, where a search of the JSON text would miss escaped characters."""
        match = Q()
        for column in columns:
            match |= Q(**{f"values__{column}__icontains": text})
        if text.isdigit():
            match |= Q(number=int(text))
        return self.filter(match) if match else self.none()


class ImportRow(models.Model):
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="rows")
    number = models.PositiveIntegerField(_("row"), help_text=_("Line in the source file."))
    values = models.JSONField(_("values"), default=dict)
    #: Secret columns (passwords), encrypted; erased once the row is imported.
    secret = models.TextField(_("secret columns"), blank=True, editable=False)
    status = models.CharField(
        _("status"), max_length=12, choices=RowStatus.choices, default=RowStatus.PENDING
    )
    errors = models.JSONField(_("errors"), default=dict, blank=True)
    object_pk = models.CharField(_("object"), max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)

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
        return "; ".join(
            f"{column}: {message}" if column != "__all__" else message
            for column, messages in self.errors.items()
            for message in messages
        )
