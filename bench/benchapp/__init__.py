"""The benchmark's per-row workload, as a ``pre_save`` receiver every contender pays."""
