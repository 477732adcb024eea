"""The admin flow's views: upload, report, confirm, job page data, progress, and the job's actions.

Each view takes the ``ImportJobAdmin`` first; ``ImportJobAdmin.get_urls`` wraps them in
``admin_site.admin_view`` (login, staff, CSRF, never cached) and permissions go through its
``has_*_permission`` methods.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta
from functools import partial
from pathlib import PurePath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page, Paginator
from django.db import transaction
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.http import urlencode
from django.utils.timesince import timeuntil
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from bulkadmin import columns, conf, crypto, exports, retention, uploads
from bulkadmin.forms import ConfirmForm, FailedRowForm, MappingForm, UploadForm
from bulkadmin.importers.base import ImportContext, Importer, RowInvalid
from bulkadmin.importers.registry import get_importer_class
from bulkadmin.jobs import confirm_upload, rerun_failed, row_columns, split_secret
from bulkadmin.launch import launch_job
from bulkadmin.mixins import BulkImportMixin
from bulkadmin.models import ImportJob, ImportRow, JobKind, JobStatus
from bulkadmin.parsing import peek
from bulkadmin.reverts import why_not_revertible
from bulkadmin.validation import Report, validate_file

if TYPE_CHECKING:
    from bulkadmin.admin import ImportJobAdmin

#: Report errors shown on the page; the report itself keeps at most validation.MAX_REPORTED_ERRORS.
ERRORS_SHOWN = 100
#: The code of the upload form's error for a user at MAX_PENDING_UPLOADS_PER_USER.
TOO_MANY_WAITING = "too_many_waiting"


# ---- helpers -------------------------------------------------------------------------------
def admin_url(name: str, *args: Any) -> str:
    return reverse(f"admin:bulkadmin_importjob_{name}", args=args)


def get_job(
    model_admin: ImportJobAdmin, request: HttpRequest, object_id: Any, *, run: bool = False
) -> ImportJob:
    """The job, if the user may see it (and, with ``run``, act on it): one query."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    job = ImportJob.objects.filter(pk=object_id).first()
    if job is None:
        raise Http404("No such import job.")
    allowed = (
        model_admin.has_run_permission(request, job) if run else model_admin.has_view_permission(request, job)
    )
    if not allowed:
        raise PermissionDenied
    return job


def start_job(model_admin: ImportJobAdmin, request: HttpRequest, job: ImportJob) -> None:
    """Record a new job in the admin's history and launch it once this transaction commits."""
    with transaction.atomic():
        model_admin.log_addition(request, job, [{"added": {}}])
        transaction.on_commit(partial(launch_job, job))


def form_page(
    model_admin: ImportJobAdmin,
    request: HttpRequest,
    template: str,
    form: Any,
    *,
    title: str,
    extra: dict[str, Any] | None = None,
    advanced: tuple[str, ...] = (),
) -> TemplateResponse:
    """What ``admin/change_form.html`` needs to render a plain form like the admin's own;
    the ``advanced`` fields fold away, as the admin's collapsed fieldsets do."""
    main = [name for name in form.fields if name not in advanced]
    folded = [name for name in form.fields if name in advanced]
    fieldsets: list[tuple[str | None, dict[str, Any]]] = [(None, {"fields": main})]
    if folded:
        fieldsets.append((str(_("Advanced")), {"fields": folded, "classes": ["collapse"]}))
    adminform = helpers.AdminForm(form, fieldsets, {})
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
        "adminform": adminform,
        "errors": helpers.AdminErrorList(form, []),
        "media": model_admin.media + adminform.media,
        "inline_admin_formsets": [],
        "is_popup": False,
        "add": True,
        "change": False,
        "has_view_permission": model_admin.has_view_permission(request),
        "has_file_field": form.is_multipart(),
        "form_url": "",
        **(extra or {}),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, template, context)


def build_importer(importer_cls: type[Importer], user: Any, options: dict[str, Any]) -> Importer:
    """Validation sees who uploads: only a superuser may set is_staff/is_superuser."""
    return importer_cls(ImportContext.for_person(user, options))


# ---- upload, report, confirm ---------------------------------------------------------------
def upload(model_admin: ImportJobAdmin, request: HttpRequest) -> HttpResponse:
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    choices = model_admin.importer_choices_for(request)
    can_update = any(model_admin.importer_permitted(request, path, "change") for path, _label in choices)
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES, importer_choices=choices, can_update=can_update)
        if form.is_valid():
            response = _validate_upload(model_admin, request, form)
            if response is not None:
                return response
    else:
        initial = {
            key: request.GET[key]
            for key in ("importer", "update_existing", "send_password_email", "workers")
            if key in request.GET
        }
        form = UploadForm(initial=initial, importer_choices=choices, can_update=can_update)
    return form_page(
        model_admin,
        request,
        "bulkadmin/upload.html",
        form,
        title=_("Import a file"),
        extra={
            "columns": _columns_help(choices),
            # At the cap, a way out for reports whose pages were closed: delete them all.
            "discard_waiting_url": admin_url("discard") if form.has_error("file", TOO_MANY_WAITING) else "",
        },
        advanced=("workers",),
    )


def _columns_help(choices: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "label": label,
            "columns": get_importer_class(path).columns,
            "template_csv": admin_url("template", path, "csv"),
            "template_xlsx": admin_url("template", path, "xlsx"),
        }
        for path, label in choices
    ]


def template(
    model_admin: ImportJobAdmin, request: HttpRequest, importer: str, file_format: str
) -> HttpResponseBase:
    """An importer's template file: its columns, a help row and an example row."""
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    if importer not in {path for path, _ in model_admin.importer_choices_for(request)}:
        raise Http404("No such importer.")
    importer_cls = get_importer_class(importer)
    name = _ascii(str(importer_cls.verbose_name()).lower().replace(" ", "-")) + f"-template.{file_format}"
    response: HttpResponseBase
    if file_format == "csv":
        response = HttpResponse(exports.template_csv(importer_cls), content_type=exports.CONTENT_TYPES["csv"])
    elif file_format == "xlsx":
        response = FileResponse(
            exports.template_xlsx(importer_cls), content_type=exports.CONTENT_TYPES["xlsx"]
        )
    else:
        raise Http404("Unknown format.")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _validate_upload(
    model_admin: ImportJobAdmin, request: HttpRequest, form: UploadForm
) -> HttpResponse | None:
    """Validate in the request: nothing written to the database, no signal sent (but for the
    clean-up of what is past its retention)."""
    retention.clean()
    importer_cls = form.importer_class()
    options = form.job_options()
    if options["update_existing"] and not model_admin.importer_permitted(request, importer_cls, "change"):
        form.add_error("update_existing", _("You do not have permission to change existing objects."))
        return None
    upload_file = form.cleaned_data["file"]
    try:
        upload_id = uploads.save_chunks(upload_file.chunks(), owner=request.user.pk)
    except uploads.UploadTooLarge as exc:
        form.add_error("file", str(exc))
        return None
    except uploads.TooManyWaiting as exc:
        form.add_error("file", ValidationError(_too_many_waiting(exc), code=TOO_MANY_WAITING))
        return None
    pending = uploads.PendingUpload(
        upload_id=upload_id,
        name=str(upload_file.name or "upload"),
        importer=importer_cls.dotted_path(),
        owner=str(request.user.pk),
        options=options,
        workers=form.cleaned_data.get("workers"),
    )
    return _report_page(model_admin, request, pending, form)


def _too_many_waiting(exc: uploads.TooManyWaiting) -> str:
    """Say how many reports wait, and the ways to free a slot: confirm, cancel, or wait."""
    now = timezone.now()  # aware or naive, as USE_TZ says: timeuntil compares the two
    wait = timeuntil(now + timedelta(seconds=max(0.0, exc.frees_at - time.time())), now)
    return ngettext(
        "You have %(count)d report waiting for confirmation, the most allowed. Import or cancel "
        "it from its page first, or upload again in %(wait)s, when it expires.",
        "You have %(count)d reports waiting for confirmation, the most allowed. Import or cancel "
        "one of them from its page first, or upload again in %(wait)s, when the oldest expires.",
        exc.waiting,
    ) % {"count": exc.waiting, "wait": wait}


def _back_url(pending: uploads.PendingUpload) -> str:
    """The upload form again, with the importer and options this upload was checked with."""
    return (
        admin_url("add")
        + "?"
        + urlencode(
            {"importer": pending.importer, **{k: "on" for k, v in pending.options.items() if v}}
            | ({"workers": str(pending.workers)} if pending.workers else {})
        )
    )


def _report_page(
    model_admin: ImportJobAdmin, request: HttpRequest, pending: uploads.PendingUpload, form: UploadForm | None
) -> HttpResponse | None:
    """Validate a saved upload and show its report, or the column mapping when its header is
    not the importer's; None when the upload form should show an error."""
    importer_cls = get_importer_class(pending.importer)
    importer = build_importer(importer_cls, request.user, pending.options)
    report = validate_file(pending.path, pending.name, importer, mapping=pending.mapping)
    if report.header_mismatch and pending.mapping is None:
        headers = peek(pending.path, pending.name).headers
        known = columns.remembered(pending.importer, headers)
        if known is not None and not columns.problems(known, importer_cls):
            with_known = dataclasses.replace(pending, mapping=known)
            again = validate_file(pending.path, pending.name, importer, mapping=known)
            if not again.header_mismatch:
                pending, report = with_known, again
                messages.info(request, _("The columns are mapped as they were for this header last time."))
    if report.header_mismatch:
        return _mapping_page(model_admin, request, pending, importer_cls, problem=report.file_error)
    if report.file_error:
        uploads.discard(pending.upload_id, pending.owner)
        if form is not None:
            form.add_error("file", report.file_error)
            return None
        messages.error(request, report.file_error)
        return HttpResponseRedirect(admin_url("add"))
    pending = dataclasses.replace(pending, invalid=report.invalid)
    confirm_form = ConfirmForm(initial={"token": pending.sign()})
    return render_report(
        model_admin, request, report, pending, confirm_form, _back_url(pending), importer_cls
    )


def _mapping_page(
    model_admin: ImportJobAdmin,
    request: HttpRequest,
    pending: uploads.PendingUpload,
    importer_cls: type[Importer],
    *,
    form: MappingForm | None = None,
    problem: str = "",
) -> HttpResponse:
    """Where each of the file's columns goes, with sample values and a best guess preselected."""
    if form is None:
        sample = peek(pending.path, pending.name)
        form = MappingForm(
            initial={"token": pending.sign()},
            sample=sample,
            importer_cls=importer_cls,
            mapping=pending.mapping or columns.guess(sample.headers, importer_cls),
        )
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Match the columns of %(name)s") % {"name": pending.name},
        "opts": model_admin.opts,
        "has_view_permission": model_admin.has_view_permission(request),
        "form": form,
        "problem": problem,
        "pending": pending,
        "importer_label": importer_cls.verbose_name(),
        "required": importer_cls.required_columns(),
        "mapping_url": admin_url("columns"),
        "back_url": admin_url("add") + "?" + urlencode({"importer": pending.importer}),
        "discard_url": admin_url("discard"),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "bulkadmin/mapping.html", context)


def map_columns(model_admin: ImportJobAdmin, request: HttpRequest) -> HttpResponse:
    """The mapping step: shown again from the report's "Change", or submitted."""
    pending = _posted_upload(model_admin, request)
    if pending is None:
        return _expired(request)
    importer_cls = get_importer_class(pending.importer)
    if "_map" not in request.POST:
        return _mapping_page(model_admin, request, pending, importer_cls)
    form = MappingForm(
        request.POST,
        sample=peek(pending.path, pending.name),
        importer_cls=importer_cls,
        mapping=pending.mapping or {},
    )
    if not form.is_valid():
        return _mapping_page(model_admin, request, pending, importer_cls, form=form)
    mapped = dataclasses.replace(pending, mapping=form.mapping())
    return _report_page(model_admin, request, mapped, None) or _expired(request)


def _signed_upload(request: HttpRequest) -> uploads.PendingUpload | None:
    """The upload a posted token names, if it is this user's and has not expired."""
    form = ConfirmForm(request.POST)
    if not form.is_valid():
        return None
    try:
        return uploads.PendingUpload.unsign(form.cleaned_data["token"], request.user.pk)
    except uploads.UploadExpired:
        return None


def _posted_upload(
    model_admin: ImportJobAdmin, request: HttpRequest, *, on_disk: bool = True
) -> uploads.PendingUpload | None:
    """The upload a report's form names, if this user may import it; None if it expired or (with
    ``on_disk``) its file is gone. The confirm does without the file: a job may hold it."""
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    pending = _signed_upload(request)
    if pending is None:
        return None
    if pending.importer not in {path for path, _ in model_admin.importer_choices_for(request)}:
        raise PermissionDenied
    return pending if not on_disk or pending.path.is_file() else None


def discard(model_admin: ImportJobAdmin, request: HttpRequest) -> HttpResponse:
    """Cancel a report (or the mapping step): its upload is deleted, so it no longer counts against
    MAX_PENDING_UPLOADS_PER_USER. From the upload form at the cap, every waiting upload of the
    user's is, for the reports whose pages were closed."""
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    if "_discard_waiting" in request.POST:
        count = uploads.discard_all(request.user.pk)
        messages.success(
            request,
            ngettext(
                "%(count)d upload waiting for confirmation was deleted.",
                "%(count)d uploads waiting for confirmation were deleted.",
                count,
            )
            % {"count": count},
        )
        return HttpResponseRedirect(admin_url("add"))
    pending = _signed_upload(request)
    if pending is None:
        return HttpResponseRedirect(admin_url("add"))  # nothing of theirs left to cancel
    if uploads.discard(pending.upload_id, pending.owner):  # else confirmed, or expired, already
        messages.info(
            request, _("The upload “%(name)s” is deleted; nothing was imported.") % {"name": pending.name}
        )
    return HttpResponseRedirect(_back_url(pending))


def _expired(request: HttpRequest) -> HttpResponse:
    messages.error(
        request, _("That upload has expired or is no longer available; please upload the file again.")
    )
    return HttpResponseRedirect(admin_url("add"))


def recheck_as_update(model_admin: ImportJobAdmin, request: HttpRequest) -> HttpResponse:
    """The report's one-click "check again as updates": the same upload, in update mode."""
    pending = _posted_upload(model_admin, request)
    if pending is None:
        return _expired(request)
    if not model_admin.importer_permitted(request, pending.importer, "change"):
        raise PermissionDenied
    updating = dataclasses.replace(pending, options={**pending.options, "update_existing": True})
    return _report_page(model_admin, request, updating, None) or _expired(request)


def invalid_rows(model_admin: ImportJobAdmin, request: HttpRequest) -> HttpResponseBase:
    """The report's invalid rows as a fix-it CSV, before anything is imported."""
    pending = _posted_upload(model_admin, request)
    if pending is None:
        return _expired(request)
    importer = build_importer(get_importer_class(pending.importer), request.user, pending.options)
    response = FileResponse(
        exports.invalid_rows_csv(pending.path, pending.name, importer, pending.mapping),
        content_type=exports.CONTENT_TYPES["csv"],
    )
    stem = PurePath(PureWindowsPath(pending.name).name).stem[:100] or "upload"
    response["Content-Disposition"] = f'attachment; filename="{_ascii(stem)}-invalid-rows.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _ascii(text: str) -> str:
    """A file name safe in a header: letters, digits, dot, dash and underscore."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in text)


def render_report(
    model_admin: ImportJobAdmin,
    request: HttpRequest,
    report: Report,
    pending: uploads.PendingUpload,
    confirm_form: ConfirmForm,
    back_url: str,
    importer_cls: type[Importer],
) -> TemplateResponse:
    headers = report.headers
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Check %(name)s before importing") % {"name": pending.name},
        "opts": model_admin.opts,
        "has_view_permission": model_admin.has_view_permission(request),
        "report": report,
        "pending": pending,
        "importer_label": importer_cls.verbose_name(),
        "errors_shown": report.errors[:ERRORS_SHOWN],
        "errors_hidden": report.error_count - min(len(report.errors), ERRORS_SHOWN),
        "error_groups": report.error_groups(),
        "can_recheck_as_update": (
            report.mostly_existing
            and not pending.options.get("update_existing")
            and model_admin.importer_permitted(request, importer_cls, "change")
        ),
        "recheck_url": admin_url("recheck"),
        "mapping_url": admin_url("columns"),
        "mapped": [
            (header, column) for header, column in (pending.mapping or {}).items() if header != column
        ],
        "invalid_rows_url": admin_url("invalid_rows"),
        "preview_headers": headers,
        "preview_rows": [(number, [values.get(h, "") for h in headers]) for number, values in report.preview],
        "confirm_form": confirm_form,
        "confirm_url": admin_url("confirm"),
        "back_url": back_url,
        "discard_url": admin_url("discard"),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "bulkadmin/report.html", context)


def confirm(model_admin: ImportJobAdmin, request: HttpRequest) -> HttpResponse:
    pending = _posted_upload(model_admin, request, on_disk=False)
    if pending is None:
        return _expired(request)
    if pending.options.get("update_existing") and not model_admin.importer_permitted(
        request, pending.importer, "change"
    ):
        raise PermissionDenied  # revoked since the report: the token outlives permissions
    try:
        job, created = confirm_upload(pending, request.user, site_url=request.build_absolute_uri("/"))
    except uploads.UploadExpired:
        return _expired(request)
    if not created:
        messages.info(
            request,
            _("This file was already confirmed as job #%(job)s; it is imported once.") % {"job": job.pk},
        )
        return HttpResponseRedirect(admin_url("change", job.pk))
    start_job(model_admin, request, job)
    messages.success(
        request,
        f"Importing {job.source_name}. Its rows are checked once more as they are read in; "
        "any that are invalid now are listed below as failed rows, to correct and rerun.",
    )
    return HttpResponseRedirect(admin_url("change", job.pk))


# ---- the job page --------------------------------------------------------------------------
def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def progress_data(job: ImportJob) -> dict[str, Any]:
    """Everything the progress panel shows, from the job row alone: O(1) however large the job."""
    now = timezone.now()
    elapsed = ((job.finished_at or now) - job.started_at).total_seconds() if job.started_at else None
    rate = job.processed / elapsed if elapsed and job.processed else None
    live = job.status in (JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.VALIDATED)
    reading = not job.prepared  # the runner is still reading the upload: the total is growing
    if reading:
        rate = None
    eta = job.pending / rate if rate and live and not job.is_final else None
    percent = 100.0 if job.total == 0 else min(100.0, 100.0 * job.processed / job.total)
    percent = 0.0 if reading else percent
    # "12.5", "100": one decimal where it says something, the same in the first render and each poll
    shown: float | int = int(percent) if percent == int(percent) else round(percent, 1)
    heartbeat_age = (now - job.heartbeat_at).total_seconds() if job.heartbeat_at else None
    status_display = str(job.get_status_display())
    if reading and job.status == JobStatus.RUNNING:
        status_display = str(_("Reading the file"))
    counts = {
        "total": job.total,
        "processed": job.processed,
        "succeeded": job.succeeded,
        "failed": job.failed,
        "pending": job.pending,
    }
    return {
        "id": job.pk,
        "status": job.status,
        "status_display": status_display,
        # Formatted here only, for the first render and each poll alike ("6,100 of 20,000").
        **{f"{name}_display": number_format(value, force_grouping=True) for name, value in counts.items()},
        "percent_display": number_format(shown),
        "reading": reading,
        "total": job.total,
        "processed": job.processed,
        "succeeded": job.succeeded,
        "failed": job.failed,
        "pending": job.pending,
        "percent": shown,
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "heartbeat_age": round(heartbeat_age, 1) if heartbeat_age is not None else None,
        "elapsed": round(elapsed, 1) if elapsed is not None else None,
        "rate": round(rate, 1) if rate is not None else None,
        "eta": round(eta, 1) if eta is not None else None,
        "elapsed_display": _duration(elapsed),
        "eta_display": _duration(eta) if eta is not None else ("—" if not job.is_final else _("done")),
        "rate_display": _("%(rate)s rows/s") % {"rate": number_format(round(rate), force_grouping=True)}
        if rate is not None
        else "—",
        "is_final": job.is_final,
        "is_stale": job.is_stale,
        #: Polling goes on while a runner may still change the job.
        "polling": not job.is_settled,
        "error": job.error,
    }


def progress(model_admin: ImportJobAdmin, request: HttpRequest, object_id: str) -> JsonResponse:
    job = get_job(model_admin, request, object_id)
    job.settle_if_stale()
    return JsonResponse(progress_data(job))


def failed_rows_page(
    request: HttpRequest, job: ImportJob, importer_cls: type[Importer] | None
) -> tuple[Page[Any], str]:
    query = request.GET.get("q", "").strip()[:200]
    rows = job.rows.failed().order_by("number")
    if query:
        rows = rows.search(query, row_columns(job, importer_cls))
    paginator = Paginator(
        rows.only("id", "number", "values", "errors", "corrected", "rerun_id"),
        int(conf.get("FAILED_ROWS_PER_PAGE")),
    )
    return paginator.get_page(request.GET.get("page")), query


def job_page_context(model_admin: ImportJobAdmin, request: HttpRequest, job: ImportJob) -> dict[str, Any]:
    job.settle_if_stale()
    try:
        importer_cls: type[Importer] | None = get_importer_class(job.importer)
    except Exception:  # an importer since removed from the settings: show the job all the same
        importer_cls = None
    page, query = failed_rows_page(request, job, importer_cls)
    columns = row_columns(job, importer_cls)
    is_import = job.kind == JobKind.IMPORT
    shown = [c for c in columns if any(c in row.values for row in page.object_list)]
    can_run = model_admin.has_run_permission(request, job)
    settled = job.is_settled
    imported_url = _imported_objects_url(model_admin, request, job, importer_cls)
    offered = job.rows.open().count() if settled and job.failed else 0
    return {
        "progress": progress_data(job),
        "progress_url": admin_url("progress", job.pk),
        "job": job,
        "importer_label": importer_cls.verbose_name() if importer_cls else job.importer,
        "heading": _job_heading(job, importer_cls),
        **_retention_context(job, importer_cls),
        "emails": {
            name: number_format(getattr(job, f"emails_{name}"), force_grouping=True)
            for name in ("sent", "skipped", "failed")
        },
        "reruns": list(job.reruns.order_by("pk").values_list("pk", flat=True)[:20]),
        "failed_page": page,
        "failed_rows": [(row, [row.values.get(c, "") for c in shown]) for row in page.object_list],
        "failed_columns": shown,
        "failed_query": query,
        "can_cancel": can_run and job.is_cancellable,
        "can_resume": can_run and job.is_resumable,
        "can_fix": can_run and settled and importer_cls is not None and is_import,
        "can_rerun": can_run and settled and offered > 0,
        "offered": offered,
        "imported_url": imported_url,
        "imported_label": importer_cls.get_model()._meta.verbose_name_plural
        if imported_url and importer_cls
        else "",
        "can_download": is_import and (bool(offered) if settled else job.rows.open().exists()),
        "offered_corrected": job.rows.corrected().count() if offered else 0,
        "can_update_existing": (
            importer_cls is not None
            and is_import
            and not job.options.get("update_existing")
            and model_admin.importer_permitted(request, importer_cls.dotted_path(), "change")
        ),
        "cancel_url": admin_url("cancel", job.pk),
        "resume_url": admin_url("resume", job.pk),
        "rerun_url": admin_url("rerun", job.pk),
        **_revert_context(model_admin, request, job),
        "download_csv_url": admin_url("download", job.pk, "csv"),
        "download_xlsx_url": admin_url("download", job.pk, "xlsx"),
    }


def _retention_context(job: ImportJob, importer_cls: type[Importer] | None) -> dict[str, Any]:
    """When the failed rows' passwords go, for an importer that has some."""
    when = job.secrets_erased_at() if job.failed and importer_cls and importer_cls.secret_columns() else None
    return {"secrets_erased_at": when, "secrets_erased": when is not None and when <= timezone.now()}


def _job_heading(job: ImportJob, importer_cls: type[Importer] | None) -> str:
    """What the job does, over its progress: its importer and file, its change, what it reverts."""
    label = str(importer_cls.verbose_name()) if importer_cls else job.importer
    if job.kind == JobKind.CHANGE:
        return _("Bulk change of %(what)s: %(change)s") % {
            "what": label.lower(),
            "change": job.change_description(),
        }
    if job.kind == JobKind.REVERT:
        return _("Revert of job #%(job)s") % {"job": job.reverts_id or "?"}
    return f"{label} · {job.source_name}" if job.source_name else label


def _revert_context(model_admin: ImportJobAdmin, request: HttpRequest, job: ImportJob) -> dict[str, Any]:
    """The job's reverts, and whether this user may revert it now (the page then offers it)."""
    reverted_by = list(job.reverted_by.order_by("pk"))
    # What the revert would need, without reading the job's rows (its page checks its plan):
    # a bulk change only restores, a plain import only deletes, an update-mode import may do both.
    if job.kind == JobKind.CHANGE:
        permitted = model_admin.may_revert(request, job, 0, 1)
    elif not job.options.get("update_existing"):
        permitted = model_admin.may_revert(request, job, 1, 0)
    else:
        permitted = model_admin.may_revert(request, job, 0, 1) or model_admin.may_revert(request, job, 1, 0)
    offered = not reverted_by and why_not_revertible(job) is None and permitted
    return {
        "reverted_by": reverted_by,
        "can_revert": offered,
        "revert_url": admin_url("revert", job.pk),
    }


def _imported_objects_url(
    model_admin: ImportJobAdmin, request: HttpRequest, job: ImportJob, importer_cls: type[Importer] | None
) -> str:
    """The changelist of what the job created or changed, when there is one to show: a model
    admin with ``BulkImportMixin`` this user may view, and a history (a person started it)."""
    if importer_cls is None or not job.succeeded or job.created_by_id is None:
        return ""
    try:
        model = importer_cls.get_model()
    except Exception:
        return ""
    objects_admin: Any = model_admin.admin_site._registry.get(model)
    if not isinstance(objects_admin, BulkImportMixin) or not objects_admin.has_view_permission(request):  # type: ignore[attr-defined]
        return ""
    opts = model._meta
    url = reverse(f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist")
    return url + "?" + urlencode({"bulkadmin_job": job.pk})


# ---- actions -------------------------------------------------------------------------------
def cancel(model_admin: ImportJobAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    job = get_job(model_admin, request, object_id, run=True)
    if job.request_cancel():
        model_admin.log_change(request, job, "Cancelled the import.")
        messages.success(request, _("The job is being cancelled; rows already done stay done."))
    else:
        messages.warning(
            request,
            _("The job is %(status)s; nothing to cancel.") % {"status": job.get_status_display().lower()},
        )
    return HttpResponseRedirect(admin_url("change", job.pk))


def resume(model_admin: ImportJobAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    job = get_job(model_admin, request, object_id, run=True)
    job.settle_if_stale()
    if not job.is_resumable or job.status not in (JobStatus.CRASHED, JobStatus.CANCELLED):
        messages.warning(request, _("Only a crashed or cancelled job with rows pending can be resumed."))
        return HttpResponseRedirect(admin_url("change", job.pk))
    with transaction.atomic():
        model_admin.log_change(request, job, "Resumed the import.")
        transaction.on_commit(partial(launch_job, job))
    messages.success(
        request,
        _("Resuming the job: %(count)s rows to go.")
        % {"count": number_format(job.pending, force_grouping=True)},
    )
    return HttpResponseRedirect(admin_url("change", job.pk))


def rerun(model_admin: ImportJobAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """Rerun the corrected rows (``_rerun_corrected``) or every failed row still offered."""
    job = get_job(model_admin, request, object_id, run=True)
    job_url = admin_url("change", job.pk)
    if not job.is_settled:
        messages.warning(request, _("Failed rows can be rerun once the import has stopped."))
        return HttpResponseRedirect(job_url)
    options: dict[str, Any] = {}
    if request.POST.get("update_existing"):
        if not model_admin.importer_permitted(request, job.importer, "change"):
            raise PermissionDenied
        options["update_existing"] = True
    corrected_only = "_rerun_corrected" in request.POST
    new = rerun_failed(
        job,
        user=request.user,
        corrected_only=corrected_only,
        options=options,
        site_url=request.build_absolute_uri("/"),
    )
    if new is None:
        messages.warning(
            request,
            _("No corrected row is waiting for a rerun.")
            if corrected_only
            else _("No failed row is left to rerun: each is in a rerun already."),
        )
        return HttpResponseRedirect(job_url)
    start_job(model_admin, request, new)
    messages.success(
        request,
        ngettext("Rerunning %(count)s row of %(job)s.", "Rerunning %(count)s rows of %(job)s.", new.total)
        % {"count": f"{new.total:,}", "job": job},
    )
    return HttpResponseRedirect(admin_url("change", new.pk))


def download(
    model_admin: ImportJobAdmin, request: HttpRequest, object_id: str, file_format: str
) -> HttpResponseBase:
    if file_format not in exports.CONTENT_TYPES:
        raise Http404("Unknown format.")
    job = get_job(model_admin, request, object_id)
    try:
        importer_cls = get_importer_class(job.importer)
    except Exception as exc:
        raise Http404("The job's importer is no longer configured.") from exc
    name = f"job-{job.pk}-failed-rows.{file_format}"
    response: HttpResponseBase
    if file_format == "csv":
        response = StreamingHttpResponse(
            exports.failed_rows_csv(job, importer_cls()), content_type=exports.CONTENT_TYPES["csv"]
        )
    else:
        response = FileResponse(
            exports.failed_rows_xlsx(job, importer_cls()), content_type=exports.CONTENT_TYPES["xlsx"]
        )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def edit_row(model_admin: ImportJobAdmin, request: HttpRequest, object_id: str, row_id: int) -> HttpResponse:
    """Correct a failed row; it is checked as the upload was, and imported by the next rerun."""
    job = get_job(model_admin, request, object_id, run=True)
    row = ImportRow.objects.filter(job=job, pk=row_id).failed().first()
    if row is None:
        raise Http404("No such failed row.")
    job_url = admin_url("change", job.pk)
    if row.rerun_id is not None:
        messages.warning(
            request,
            _("Row %(number)s is in rerun #%(rerun)s; correct it there.")
            % {"number": row.number, "rerun": row.rerun_id},
        )
        return HttpResponseRedirect(job_url)
    if not job.is_settled:
        messages.warning(request, _("Rows can be corrected once the import has stopped."))
        return HttpResponseRedirect(job_url)
    try:
        importer_cls = get_importer_class(job.importer)
    except Exception as exc:
        raise Http404("The job's importer is no longer configured.") from exc
    importer = build_importer(importer_cls, request.user, dict(job.options))
    try:
        secrets = crypto.unseal(row.secret)
    except crypto.SecretUnreadable:
        secrets = {}
    form = FailedRowForm(request.POST or None, importer=importer, values=row.values)
    if request.method == "POST" and form.is_valid():
        values = _corrected_values(form, importer, secrets)
        errors = _row_errors(importer, row.number, values)
        if errors:
            form.add_row_errors(errors)
        else:
            row.values, secret = split_secret(importer, values)
            row.secret = crypto.seal(secret)
            row.errors = {}
            row.corrected = True
            row.save(update_fields=["values", "secret", "errors", "corrected"])
            model_admin.log_change(request, job, f"Corrected row {row.number}.")
            messages.success(
                request,
                _("Row %(number)s is corrected; rerun the failed rows to import it.")
                % {"number": row.number},
            )
            return HttpResponseRedirect(job_url + "#failed-rows")
    return form_page(
        model_admin,
        request,
        "bulkadmin/row_form.html",
        form,
        title=_("Correct row %(number)s") % {"number": row.number},
        extra={"original": job, "row": row, "job_url": job_url, "add": False},
    )


def _corrected_values(form: FailedRowForm, importer: Importer, secrets: dict[str, str]) -> dict[str, str]:
    secret_names = importer.secret_columns()
    values: dict[str, str] = {}
    for name, value in form.cells().items():
        if name in secret_names:
            if value:
                values[name] = value
            elif name in secrets:
                values[name] = secrets[name]
        else:
            values[name] = value
    return values


def _row_errors(importer: Importer, number: int, values: dict[str, str]) -> dict[str, list[str]]:
    try:
        cleaned = importer.clean_row(values)
    except RowInvalid as exc:
        return exc.errors
    return importer.check_rows([(number, cleaned)]).get(number, {})
