"""Models bulk_create cannot fill: a multi-table-inheritance child with a many-to-many."""

from django.db import models


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)


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
