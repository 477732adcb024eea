"""Admin for import jobs (the upload, report and job pages come with the admin issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin

from bulkadmin.models import ImportJob

if TYPE_CHECKING:
    JobModelAdmin = admin.ModelAdmin[ImportJob]
else:
    JobModelAdmin = admin.ModelAdmin


@admin.register(ImportJob)
class ImportJobAdmin(JobModelAdmin):
    list_display = [
        "__str__",
        "status",
        "total",
        "processed",
        "succeeded",
        "failed",
        "created_by",
        "created_at",
    ]
    list_filter = ["status"]
    date_hierarchy = "created_at"
    search_fields = ["source_name"]
