"""Models bulk_create cannot fill: a multi-table-inheritance child with a many-to-many."""

from django.db import models


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        """A text that can fail, as a site's may (a None formatted, a related object gone):
        for names that start with "broken-" (``tests/test_row_failures.py``)."""
        if self.name.startswith("broken-"):
            raise ValueError("this tag cannot be shown")
        return self.name


class Place(models.Model):
    name = models.CharField(max_length=100, unique=True)
    city = models.CharField(max_length=100)


class Restaurant(Place):
    cuisine = models.CharField(max_length=50)
    tags = models.ManyToManyField(Tag, blank=True)
    slug = models.SlugField(blank=True)

    def save(self, *args, **kwargs):
        self.slug = self.slug or self.name.lower().replace(" ", "-")
        super().save(*args, **kwargs)


class Author(models.Model):
    name = models.CharField(max_length=100, unique=True)


class Book(models.Model):
    """What ``ModelImporter`` must handle: a foreign key, a many-to-many, choices, a date, a
    decimal, a boolean with a default, and a save() that fills a field."""

    class Genre(models.TextChoices):
        FICTION = "fic", "Fiction"
        SCIENCE = "sci", "Science"

    isbn = models.CharField("ISBN", max_length=13, unique=True)
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.PROTECT)
    tags = models.ManyToManyField(Tag, blank=True)
    genre = models.CharField(max_length=3, choices=Genre.choices, default=Genre.FICTION)
    published = models.DateField(null=True, blank=True)
    price = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    in_print = models.BooleanField(default=True)
    title_sort = models.CharField(max_length=200, editable=False, default="")

    def save(self, *args, **kwargs):
        self.title_sort = self.title.casefold().removeprefix("the ")
        super().save(*args, **kwargs)


class Knob(models.Model):
    """A switch the test receivers read from the database, so every process sees it.

    Environment variables would not reach pool workers: a forkserver keeps the environment it
    was started with.
    """

    name = models.CharField(max_length=50, unique=True)
    value = models.CharField(max_length=200)

    @classmethod
    def get(cls, name: str) -> str:
        return cls.objects.filter(name=name).values_list("value", flat=True).first() or ""


class SignalRecord(models.Model):
    """One row per pre_save/post_save a user import fired, and in which process."""

    username = models.CharField(max_length=150)
    signal = models.CharField(max_length=10)
    pid = models.PositiveIntegerField()

    def __str__(self) -> str:
        """Fails for names that start with "broken-", as ``Tag``'s does."""
        if self.username.startswith("broken-"):
            raise ValueError("this record cannot be shown")
        return self.username
