"""``bsm experiment mixed-vs-single`` (being written; see issue 8)."""
from __future__ import annotations


def add_experiment_parser(subparsers) -> None:
    p = subparsers.add_parser("experiment", help="controlled training experiments")
    p.add_subparsers(dest="experiment", required=True)
