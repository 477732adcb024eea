from typing import TYPE_CHECKING, Any

from django.contrib import admin

from bulkadmin.admin import BulkImportMixin
from mysite.library.importers import AuthorImporter, BookImporter, EBookImporter, SubjectImporter
from mysite.library.models import Author, Book, EBook, Subject

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
else:
    ModelAdmin = admin.ModelAdmin


@admin.register(Author)
class AuthorAdmin(BulkImportMixin, ModelAdmin):
    bulk_importers = [AuthorImporter]
    list_display = ["name", "born"]
    search_fields = ["name"]


@admin.register(Subject)
class SubjectAdmin(BulkImportMixin, ModelAdmin):
    bulk_importers = [SubjectImporter]
    search_fields = ["name"]


@admin.register(Book)
class BookAdmin(BulkImportMixin, ModelAdmin):
    bulk_importers = [BookImporter]
    list_display = ["title", "isbn", "author", "format", "published", "price"]
    list_filter = ["format", "subjects"]
    list_select_related = ["author"]
    search_fields = ["title", "isbn", "author__name"]
    autocomplete_fields = ["author"]


@admin.register(EBook)
class EBookAdmin(BulkImportMixin, ModelAdmin):
    bulk_importers = [EBookImporter]
    list_display = ["title", "isbn", "author", "url"]
    list_select_related = ["author"]
    search_fields = ["title", "isbn"]
