"""Files of made-up users for the demo, the tests and the benchmarks.

``python -m mysite.sampledata users.csv --rows 10000 --bad 5`` writes 10,000 rows, of which
five are deliberately wrong in different ways (see ``BAD_ROWS``).
"""

from __future__ import annotations

import argparse
import csv
import random
from collections.abc import Iterator
from pathlib import Path

HEADERS = ["username", "email", "first_name", "last_name", "password", "is_active", "groups"]
FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
LAST = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Perlman",
    "Berners-Lee",
]

#: Rows that fail validation, each for a different reason staff will meet.
BAD_ROWS: list[dict[str, str]] = [
    {"username": "bad user!", "email": "bad1@example.com"},  # invalid characters
    {"username": "bademail", "email": "not-an-email"},
    {"username": "unknowngroup", "email": "g@example.com", "groups": "No Such Group"},
    {"username": "badbool", "email": "b@example.com", "is_active": "maybe"},
    {"username": "", "email": "nobody@example.com"},  # required
    {"username": "weakpassword", "email": "w@example.com", "password": "123"},
]


def user_rows(
    count: int, *, prefix: str = "user", password: bool = False, groups: str = ""
) -> Iterator[dict[str, str]]:
    rng = random.Random(count)
    for i in range(1, count + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        yield {
            "username": f"{prefix}{i:07d}",
            "email": f"{first.lower()}.{last.lower()}.{i}@example.com",
            "first_name": first,
            "last_name": last,
            "password": f"Correct-Horse-{i}-Battery" if password else "",
            "is_active": "true",
            "groups": groups,
        }


def write_users(
    path: Path, count: int, *, bad: int = 0, prefix: str = "user", password: bool = False, groups: str = ""
) -> Path:
    """Write ``count`` good rows with ``bad`` bad ones spread through the file."""
    bad_every = count // (bad + 1) if bad else 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=HEADERS)
        writer.writeheader()
        written_bad = 0
        for i, row in enumerate(user_rows(count, prefix=prefix, password=password, groups=groups), start=1):
            writer.writerow(row)
            if bad_every and i % bad_every == 0 and written_bad < bad:
                writer.writerow(BAD_ROWS[written_bad % len(BAD_ROWS)])
                written_bad += 1
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--bad", type=int, default=0)
    parser.add_argument("--prefix", default="user")
    parser.add_argument("--password", action="store_true", help="Give every user a password.")
    args = parser.parse_args()
    write_users(args.path, args.rows, bad=args.bad, prefix=args.prefix, password=args.password)


if __name__ == "__main__":
    main()
