"""A custom importer, as the README shows: MTI child, many-to-many, and a setup hook."""

import os
import time

from import_export import fields, resources, widgets

from bulkadmin.importers import Column, Importer, ModelImporter, RowInvalid
from bulkadmin.importers.fields import parse_text, split_list
from bulkadmin.importers.resource import ResourceImporter
from tests.testapp.models import Author, Book, Knob, Restaurant, SignalRecord, Tag
from tests.testapp.receivers import consume

#: How long a slow row waits for the others before it fails the test loudly.
SLOW_ROW_DEADLINE = 20.0


class RestaurantImporter(Importer):
    label = "Restaurants"
    model = Restaurant
    columns = (
        Column("name", required=True),
        Column("city", required=True),
        Column("cuisine"),
        Column("tags", help_text="Tag names separated by ';' (created when missing)."),
    )
    key_column = "name"

    def clean_row(self, values):
        if delay := float(os.environ.get("BULKADMIN_TEST_CLEAN_DELAY") or 0):
            time.sleep(delay)  # slow reading, so a test can catch a runner in the middle of it
        cleaned = {
            "name": parse_text("name", values.get("name", ""), max_length=100, required=True),
            "city": parse_text("city", values.get("city", ""), max_length=100, required=True),
            "cuisine": parse_text("cuisine", values.get("cuisine", ""), max_length=50),
            "tags": split_list(values.get("tags", "")),
        }
        if cleaned["cuisine"] == "poison":
            raise RowInvalid.single("cuisine", "Not on this menu.")
        return cleaned

    def check_rows(self, rows):
        names = [cleaned["name"] for _, cleaned in rows]
        taken = set(Restaurant.objects.filter(name__in=names).values_list("name", flat=True))
        return {n: {"name": ["Already listed."]} for n, c in rows if c["name"] in taken}

    def setup(self):
        self.tag_ids = dict(Tag.objects.values_list("name", "id"))
        # Knobs ``row_wait`` and ``row_spin``: seconds each row waits (an HTTP call, say) or
        # keeps the CPU busy, outside any transaction, for the thread tuning's tests.
        self.row_wait = float(Knob.get("row_wait") or 0)
        self.row_spin = float(Knob.get("row_spin") or 0)
        # Knobs ``setup_wait_file`` and ``setup_wait``: the first process to find that file
        # deletes it and takes that many seconds over its setup (one slow worker to start).
        marker = Knob.get("setup_wait_file")
        if marker and consume(marker):
            time.sleep(float(Knob.get("setup_wait") or 0))
        # Knob ``setup_writes``: each process's setup writes a tag (``setup-<pid>``).
        if Knob.get("setup_writes"):
            Tag.objects.get_or_create(name=f"setup-{os.getpid()}")  # setup() runs again after a rollback

    def prepare_row(self, cleaned):
        time.sleep(self.row_wait)
        spin_until = time.thread_time() + self.row_spin
        while time.thread_time() < spin_until:
            pass
        # Knob ``slow_until``: a restaurant named "slow…" waits, outside any transaction, until
        # that many restaurants are saved by other threads (a slow row, for the barrier test).
        wanted = int(Knob.get("slow_until") or 0) if cleaned["name"].startswith("slow") else 0
        deadline = time.monotonic() + SLOW_ROW_DEADLINE
        while wanted and Restaurant.objects.count() < wanted:
            if time.monotonic() > deadline:
                raise TimeoutError("the other rows were not saved meanwhile")
            time.sleep(0.02)
        return cleaned

    def import_row(self, cleaned):
        tags = cleaned.pop("tags")
        restaurant = Restaurant(**cleaned)
        restaurant.save()
        ids = []
        for name in tags:
            if name not in self.tag_ids:
                self.tag_ids[name] = Tag.objects.get_or_create(name=name)[0].pk
            ids.append(self.tag_ids[name])
        restaurant.tags.add(*ids)
        return restaurant


class BookImporter(ModelImporter):
    model = Book
    fields = ["isbn", "title", "author", "tags", "genre", "published", "price", "in_print"]
    key_field = "isbn"
    lookups = {"author": "name", "tags": "name"}


class RestaurantModelImporter(ModelImporter):
    """The multi-table child of the README's hand-written importer, in four lines."""

    model = Restaurant
    fields = ["name", "city", "cuisine", "tags"]
    key_field = "name"
    lookups = {"tags": "name"}


class BookResource(resources.ModelResource):
    """A django-import-export resource as a site already has one: widgets and hooks."""

    author = fields.Field(
        attribute="author", column_name="Author", widget=widgets.ForeignKeyWidget(Author, "name")
    )
    tags = fields.Field(
        attribute="tags",
        column_name="Tags",
        widget=widgets.ManyToManyWidget(Tag, separator=";", field="name"),
    )

    class Meta:
        model = Book
        fields = ("isbn", "title", "author", "tags", "published")
        import_id_fields = ("isbn",)

    def before_import(self, dataset, **kwargs):
        SignalRecord.objects.create(username=",".join(dataset.headers), signal="imp_start", pid=os.getpid())

    def after_import(self, dataset, result, **kwargs):
        SignalRecord.objects.create(username=str(result.total_rows), signal="imp_end", pid=os.getpid())

    def before_import_row(self, row, **kwargs):
        row["title"] = row["title"].strip().upper()


class BookResourceImporter(ResourceImporter):
    resource_class = BookResource
