"""bulkadmin: create or update thousands of objects from a file, every row through ``save()``."""

__version__ = "0.1.0"
