"""A small library: a foreign key (book → author), a many-to-many (book ↔ subject) and a
multi-table child (e-book → book), what ``bulk_create`` cannot fill."""

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100, unique=True)
    born = models.DateField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Subject(models.Model):
    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    class Format(models.TextChoices):
        HARDCOVER = "hardcover", "Hardcover"
        PAPERBACK = "paperback", "Paperback"

    isbn = models.CharField("ISBN", max_length=13, unique=True)
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="books")
    subjects = models.ManyToManyField(Subject, blank=True, related_name="books")
    format = models.CharField(max_length=10, choices=Format.choices, default=Format.PAPERBACK)
    published = models.DateField(null=True, blank=True)
    price = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)

    def __str__(self) -> str:
        return self.title


class EBook(Book):
    """A multi-table child: saving one saves its ``Book`` row too."""

    url = models.URLField("download URL")
    size_mb = models.DecimalField("size (MB)", max_digits=6, decimal_places=1, null=True, blank=True)
