"""The plain loop as a user runs it: ``python -m bench.loop_command FILE``.

Timed whole, as ``bulkimport`` is (``loop-command`` in the bench): the interpreter starts, Django
is set up, the file is read and each row is saved by ``User.objects.create()`` in autocommit,
the script the article starts from.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    import django

    django.setup()
    from bench.contenders import create_user, read_rows

    for row in read_rows(Path(argv[0])):
        create_user(row)


if __name__ == "__main__":
    main(sys.argv[1:])
