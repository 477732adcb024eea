"""``make bench``: bulkadmin against the recipes people use today (see bench/README.md)."""
