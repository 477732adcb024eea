"""An admin that already uses django-import-export: BulkImportMixin adds "Import in the background"."""

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from import_export.admin import ImportMixin

from bulkadmin.admin import BulkImportMixin
from tests.testapp.importers import BookResource
from tests.testapp.models import Book

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
else:
    ModelAdmin = admin.ModelAdmin


@admin.register(Book)
class BookAdmin(BulkImportMixin, ImportMixin, ModelAdmin):
    resource_classes = [BookResource]
