"""The email a job's starter gets when it ends: counts, duration, and a link to the job."""

from __future__ import annotations

import logging

from django.core.mail import send_mail
from django.urls import reverse
from django.utils.translation import gettext as _

from bulkadmin import conf
from bulkadmin.models import ImportJob, JobStatus, StartedVia

logger = logging.getLogger("bulkadmin")

#: The endings worth an email: the rows are all done.
ENDINGS = frozenset({JobStatus.SUCCEEDED, JobStatus.FINISHED_WITH_ERRORS})


def notify_starter(job: ImportJob) -> bool:
    """Email the person who started ``job``; never for the command line. A failure is logged."""
    starter = job.created_by
    if (
        not conf.get("NOTIFY_STARTER")
        or job.status not in ENDINGS
        or job.started_via != StartedVia.PERSON
        or starter is None
        or not getattr(starter, "email", "")
    ):
        return False
    link = job.link_base() + reverse("admin:bulkadmin_importjob_change", args=[job.pk])
    seconds = (job.finished_at - job.started_at).total_seconds() if job.finished_at and job.started_at else 0
    subject = _("Import #%(id)s %(status)s: %(succeeded)s succeeded, %(failed)s failed") % {
        "id": job.pk,
        "status": job.get_status_display().lower(),
        "succeeded": f"{job.succeeded:,}",
        "failed": f"{job.failed:,}",
    }
    body = _(
        "Your import of %(file)s has ended: %(status)s.\n\n"
        "Rows: %(total)s\nSucceeded: %(succeeded)s\nFailed: %(failed)s\nDuration: %(seconds)s s\n\n"
        "%(link)s\n"
    ) % {
        "file": job.source_name or job.importer,
        "status": job.get_status_display().lower(),
        "total": f"{job.total:,}",
        "succeeded": f"{job.succeeded:,}",
        "failed": f"{job.failed:,}",
        "seconds": f"{seconds:,.0f}",
        "link": link,
    }
    try:
        send_mail(subject, body, from_email=None, recipient_list=[starter.email])
    except Exception:
        logger.exception("Job %s: the email to its starter could not be sent.", job.pk)
        return False
    return True
