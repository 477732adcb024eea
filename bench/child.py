"""Entry point of one measured process: ``python -m bench.child '{"contender": ..., ...}'``.

Prints one JSON line (prefixed ``BENCH-RESULT``) with the timings; the parent samples the
memory of this process and of everything it starts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    spec = json.loads(sys.argv[1])
    import django

    django.setup()
    if spec["mode"] == "contender":
        from bench.contenders import run

        result = run(spec["contender"], Path(spec["csv"]), int(spec["rows"]))
    elif spec["mode"] == "memory":
        from bench.extras import run_memory

        result = run_memory(int(spec["rows"]), int(spec["workers"]))
    elif spec["mode"] == "confirm":
        from bench.extras import run_confirm

        result = run_confirm(Path(spec["csv"]))
    elif spec["mode"] == "export":
        from bench.extras import run_export

        result = run_export(int(spec["rows"]))
    elif spec["mode"] == "validation":
        from bench.extras import run_validation

        result = run_validation(Path(spec["csv"]))
    else:
        raise SystemExit(f"unknown mode {spec['mode']!r}")
    sys.stdout.write("BENCH-RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
