"""``costaware costs``: showback / chargeback from the command line.

    costaware costs --by team --from 2026-10-01 --to 2026-11-01
    costaware costs --by model --source focus --path exports/ --out reports/

Wired into the main CLI with ``add_costs_commands(subparsers)``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any


def add_costs_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "costs", help="cost per team, model or env (showback), with untagged spend"
    )
    p.add_argument("--by", choices=["team", "model", "env"], default="team")
    p.add_argument(
        "--from",
        dest="start",
        type=dt.date.fromisoformat,
        required=True,
        help="first day, YYYY-MM-DD",
    )
    p.add_argument(
        "--to",
        dest="end",
        type=dt.date.fromisoformat,
        required=True,
        help="day after the last, YYYY-MM-DD (end exclusive)",
    )
    p.add_argument(
        "--source",
        choices=["ledger", "focus"],
        default="ledger",
        help="ledger: what costaware's own runs recorded; focus: a FOCUS export",
    )
    p.add_argument("--path", help="FOCUS export file or folder (with --source focus)")
    p.add_argument("--out", help="also write the CSV and HTML report into this folder")
    p.set_defaults(func=run_costs)


def run_costs(args: argparse.Namespace) -> int:
    from costaware.costs import make_cost_source
    from costaware.costs.showback import load_charges, render_text, summarize, write_report
    from costaware.errors import ConfigError
    from costaware.settings import Settings
    from costaware.store.ledger import Ledger

    if args.end <= args.start:
        raise ConfigError(f"--to {args.end} must be after --from {args.start}")
    ledger = Ledger(Settings.from_env().db_url)
    options = {"path": args.path} if args.source == "focus" else {}
    if args.source == "focus" and not args.path:
        raise ConfigError("--source focus needs --path (a FOCUS export file or folder)")
    source = make_cost_source(args.source, ledger, options)
    charges = load_charges(source, args.start, args.end)
    summary = summarize(charges, args.by, args.start, args.end)
    print(render_text(summary))
    if args.out:
        paths = write_report(charges, summary, args.out)
        print(f"wrote {paths['csv']} and {paths['html']}")
    return 0
