"""The admin's bulk change action and a job's "Revert" page.

Both check everything in the request without writing (the change through the importer's
rules, the revert's permissions), then create a job and hand it to the launcher after the
transaction commits, as a confirmed upload does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from bulkadmin import changes, reverts
from bulkadmin.forms import BulkChangeForm
from bulkadmin.importers.base import ImportContext
from bulkadmin.importers.registry import get_importer_class
from bulkadmin.models import ImportJob, JobStatus
from bulkadmin.views import admin_url, get_job, start_job

if TYPE_CHECKING:
    from bulkadmin.admin import ImportJobAdmin


def _job_url(job: ImportJob) -> str:
    return admin_url("change", job.pk)


# ---- revert --------------------------------------------------------------------------------
def revert(model_admin: ImportJobAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """GET: what reverting the job would delete and restore; POST: start the revert job."""
    job = get_job(model_admin, request, object_id)
    reason = reverts.why_not_revertible(job)
    if reason:
        messages.warning(request, reason)
        return HttpResponseRedirect(_job_url(job))
    existing = reverts.latest_revert(job)
    if existing is not None:
        messages.info(request, _("This job is reverted by %(job)s.") % {"job": existing})
        return HttpResponseRedirect(_job_url(existing))
    plan = reverts.plan(job)
    if not model_admin.may_revert(request, job, plan.deletes, plan.restores):
        raise PermissionDenied
    if request.method == "POST":
        try:
            new, created = reverts.start_revert(job, request.user, site_url=request.build_absolute_uri("/"))
        except reverts.NotRevertible as exc:  # it changed since the page was shown
            messages.warning(request, str(exc))
            return HttpResponseRedirect(_job_url(job))
        if created and new.status == JobStatus.VALIDATED:
            start_job(model_admin, request, new)
            messages.success(request, _("Reverting %(job)s.") % {"job": job})
        return HttpResponseRedirect(_job_url(new))
    model = plan.model
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Are you sure?"),
        "subtitle": str(job),
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
        "job": job,
        "job_url": _job_url(job),
        "plan": plan,
        "noun": model._meta.verbose_name,
        "noun_plural": model._meta.verbose_name_plural,
        "object_admin": model in model_admin.admin_site._registry,
        "model_opts": model._meta,
        **{
            f"{name}_display": number_format(getattr(plan, name), force_grouping=True)
            for name in ("deletes", "restores", "unrecorded")
        },
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "bulkadmin/revert_confirmation.html", context)


# ---- the changelist action -------------------------------------------------------------------
def change_selected(model_admin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
    """The action "Change selected … through save()": a form, then a bulk change job."""
    jobs_admin = model_admin.admin_site._registry.get(ImportJob)
    path = model_admin.bulk_change_importer(request)
    if path is None or jobs_admin is None:
        raise PermissionDenied
    importer_cls = get_importer_class(path)
    importer = importer_cls(ImportContext.for_person(request.user, changes.Change().as_options()))
    count = queryset.count()
    if request.POST.get("bulkadmin_change"):
        form = BulkChangeForm(importer, request.POST)
        if form.is_valid():
            change = form.change()
            key = importer_cls.key_column or "pk"
            probe = queryset.order_by("pk").values_list(key, flat=True).first()
            problems = changes.check(importer, change, "" if probe is None else str(probe))
            for name, errors in problems.items():
                form.add_problems(name, errors)
            if not problems:
                job = changes.start_change(
                    queryset,
                    importer_cls,
                    change,
                    user=request.user,
                    site_url=request.build_absolute_uri("/"),
                )
                if job is None:
                    messages.warning(request, _("No objects were selected; nothing changed."))
                    return None
                start_job(jobs_admin, request, job)
                messages.success(
                    request,
                    ngettext(
                        "Changing %(count)s %(name)s in the background.",
                        "Changing %(count)s %(name_plural)s in the background.",
                        job.total,
                    )
                    % {
                        "count": number_format(job.total, force_grouping=True),
                        "name": model_admin.opts.verbose_name,
                        "name_plural": model_admin.opts.verbose_name_plural,
                    },
                )
                return HttpResponseRedirect(_job_url(job))
    else:
        form = BulkChangeForm(importer)
    opts = model_admin.opts
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Change %(count)s %(name)s through save()")
        % {
            "count": number_format(count, force_grouping=True),
            "name": opts.verbose_name if count == 1 else opts.verbose_name_plural,
        },
        "opts": opts,
        "app_label": opts.app_label,
        "form": form,
        "count": count,
        "count_display": number_format(count, force_grouping=True),
        "queryset": queryset[:20],
        "select_across": request.POST.get("select_across") == "1",
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "action_name": "bulkadmin_change",
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": model_admin.media + form.media,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "bulkadmin/bulk_change.html", context)
