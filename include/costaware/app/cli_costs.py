"""``costaware costs``: showback / chargeback from the command line.

    costaware costs --by team --from 2026-10-01 --to 2026-11-01
    costaware costs --by team,env --source focus --path s3://billing/focus/costaware-focus/
    costaware costs --by tag:cost-center --source focus --path exports/ --alias cc=cost-center
    costaware costs --chargeback 2026-10 --source focus --path exports/ --out reports/

A FOCUS export (file, folder, AWS Data Exports prefix, Azure export folder) is read in one
streaming pass whatever its size; what loading it found (anomalies, tag-key merges, the
reconciliation with the file's own totals) is printed under the table. ``--strict`` refuses
an export with anomalies instead. Wired into the main CLI with
``add_costs_commands(subparsers)``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any


def _alias(text: str) -> tuple[str, str]:
    key, sep, target = text.partition("=")
    if not sep or not key.strip() or not target.strip():
        raise argparse.ArgumentTypeError(
            f"--alias {text!r}: write SPELLING=KEY, e.g. environment=env"
        )
    return key, target


def _month(text: str) -> dt.date:
    try:
        return dt.datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--chargeback {text!r}: write the month as YYYY-MM"
        ) from None


def add_costs_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "costs",
        help="cost per team, model, env, any tag or service (showback), with untagged spend",
    )
    p.add_argument(
        "--by",
        default="team",
        help="tag:KEY | service | account | region | model | team | env, several "
        "comma-separated (team,env); default team",
    )
    p.add_argument("--from", dest="start", type=dt.date.fromisoformat, help="first day, YYYY-MM-DD")
    p.add_argument(
        "--to",
        dest="end",
        type=dt.date.fromisoformat,
        help="day after the last, YYYY-MM-DD (end exclusive)",
    )
    p.add_argument(
        "--source",
        choices=["ledger", "focus"],
        default="ledger",
        help="ledger: what costaware's own runs recorded; focus: a FOCUS export",
    )
    p.add_argument(
        "--path",
        help="FOCUS export: file, folder, or s3://bucket/prefix (with --source focus)",
    )
    p.add_argument("--conn-id", help="Airflow connection for an s3:// or gs:// --path")
    p.add_argument(
        "--alias",
        action="append",
        type=_alias,
        default=[],
        metavar="SPELLING=KEY",
        help="tag-key alias, repeatable (environment=env); keys are also trimmed and "
        "case-folded, and every merge is reported",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse an export with anomalies (negative usage, null pricing category, tags "
        "that are not JSON...) instead of loading and listing them",
    )
    p.add_argument(
        "--chargeback",
        type=_month,
        metavar="YYYY-MM",
        help="write the month's chargeback per team as FOCUS columns (needs --out)",
    )
    p.add_argument("--out", help="also write the CSV and HTML report into this folder")
    p.set_defaults(func=run_costs)


def run_costs(args: argparse.Namespace) -> int:
    from costaware.costs import make_cost_source
    from costaware.costs.showback import render_text, showback, write_report
    from costaware.errors import ConfigError
    from costaware.settings import Settings
    from costaware.store.ledger import Ledger

    if args.source == "focus" and not args.path:
        raise ConfigError("--source focus needs --path (a FOCUS export file or folder)")
    options: dict[str, Any] = {}
    if args.source == "focus":
        options = {"path": args.path, "strict": args.strict}
        if args.alias:
            options["tag_aliases"] = dict(args.alias)
        if args.conn_id:
            options["conn_id"] = args.conn_id
    elif args.alias or args.strict or args.conn_id:
        raise ConfigError("--alias, --strict and --conn-id apply to --source focus only")
    ledger = Ledger(Settings.from_env().db_url)
    source = make_cost_source(args.source, ledger, options)
    if args.chargeback:
        return _chargeback(args, source)
    if args.start is None or args.end is None:
        raise ConfigError("costs needs --from and --to (or --chargeback YYYY-MM)")
    if args.end <= args.start:
        raise ConfigError(f"--to {args.end} must be after --from {args.start}")
    summary, charges = showback(source, args.by, args.start, args.end)
    print(render_text(summary))
    if args.out:
        paths = write_report(charges, summary, args.out)
        print(f"wrote {paths['csv']} and {paths['html']}")
    return 0


def _chargeback(args: argparse.Namespace, source: Any) -> int:
    from costaware.costs.chargeback import chargeback, write_chargeback
    from costaware.errors import ConfigError

    if not args.out:
        raise ConfigError("--chargeback needs --out (the folder the FOCUS CSV is written to)")
    if not hasattr(source, "scan"):
        raise ConfigError("--chargeback reads a FOCUS export: use --source focus --path ...")
    # The key charged: --by team (default), model, env or tag:KEY; one key only.
    key = args.by[4:] if args.by.startswith("tag:") else args.by
    if "," in key or (not args.by.startswith("tag:") and key not in ("team", "model", "env")):
        raise ConfigError(f"--chargeback --by {args.by!r}: one tag key (team, env, tag:KEY)")
    table = chargeback(source, args.chargeback, team_key=key)
    path = write_chargeback(table, args.out, args.chargeback)
    print(
        f"chargeback {args.chargeback:%Y-%m}: {len(table)} row(s), "
        f"${table['EffectiveCost'].sum():,.2f} effective; wrote {path}"
    )
    return 0
