"""The library's importers: each a few declarative lines of ``ModelImporter``."""

from bulkadmin.importers import ModelImporter
from mysite.library.models import Author, Book, EBook, Subject


class AuthorImporter(ModelImporter):
    model = Author
    key_field = "name"


class SubjectImporter(ModelImporter):
    model = Subject
    key_field = "name"


class BookImporter(ModelImporter):
    model = Book
    fields = ["isbn", "title", "author", "subjects", "format", "published", "price"]
    key_field = "isbn"
    lookups = {"author": "name", "subjects": "name"}


class EBookImporter(BookImporter):
    model = EBook
    fields = [*BookImporter.fields, "url", "size_mb"]
