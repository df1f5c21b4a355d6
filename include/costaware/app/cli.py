"""``costaware`` commands for people: replay, status, rollback, costs, airflow, suites, stack."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from costaware.errors import CostawareError


def _cmd_replay(args: argparse.Namespace) -> int:
    from costaware.app.replay import replay

    summary = replay(
        args.model,
        args.batches,
        start=args.start,
        progress=not args.no_progress,
        quiet=not args.verbose,
    )
    print()
    print(f"Replay of {args.model}: {len(summary.rows)} batches through retrain_{args.model}")
    print(summary.table())
    return 0


def _cmd_backtest(args: argparse.Namespace) -> int:
    from costaware.app.backtest import backtest, table
    from costaware.config import get_model
    from costaware.settings import Settings

    settings = Settings.from_env()
    cfg = get_model(settings.models_dir, args.model)
    bt = backtest(
        cfg,
        settings.project_root,
        args.policy,
        start=args.start,
        stop=args.stop,
        limit=args.max_usd_per_point,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    print(table(bt, events=not args.no_events))
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    import getpass

    from costaware.steps.context import StepContext
    from costaware.steps.promote import rollback

    ctx = StepContext.for_model(
        args.model, run_id=f"cli-rollback-{_now()}", actor=f"cli:{getpass.getuser()}"
    )
    out = rollback(ctx, args.to, args.reason)
    print(f"{args.model}: champion v{out['from']} → v{out['to']} (audit row written)")
    return 0


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")


def _cmd_status(args: argparse.Namespace) -> int:
    from costaware.models.registry import CHALLENGER, CHAMPION, PREVIOUS
    from costaware.steps.context import StepContext

    ctx = StepContext.for_model(args.model)
    reg = ctx.registry
    print(f"model {args.model}")
    aliases = reg.aliases(args.model)
    for alias in (CHAMPION, PREVIOUS, CHALLENGER):
        print(f"  {alias:<18} {_version(aliases.get(alias))}")
    print(f"  versions           {reg.versions(args.model)}")
    rows = ctx.ledger.decisions(args.model)[-args.last :]
    print(f"last {len(rows)} decisions:")
    for d in rows:
        print(f"  {d['batch_id']:<18} {d['action']:<8} {d['outcome'] or '-':<18} {d['reason']}")
    print("audit:")
    for a in ctx.ledger.audit(args.model)[-args.last :]:
        # The run's clock (README: One clock) when the row has it, else when it was written.
        when = a["data_time"] or a["created_at"]
        status = "" if a["status"] == "done" else f" [{a['status'].upper()}]"
        print(
            f"  {when:%Y-%m-%d %H:%M} {a['action']:<8} {_version(a['from_version'])} → "
            f"{_version(a['to_version'])} by {a['actor']}{status}: {a['reason']}"
        )
    return 0


def _version(version: str | None) -> str:
    return "-" if version is None else f"v{version}"


def _cmd_suites(args: argparse.Namespace) -> int:
    from costaware.batches.validation import write_suite
    from costaware.config import load_all
    from costaware.settings import Settings

    s = Settings.from_env()
    for cfg in load_all(s.models_dir).values():
        print(f"wrote {write_suite(cfg, s.gx_dir)}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from costaware.config import load_all
    from costaware.settings import Settings

    configs = load_all(Settings.from_env().models_dir)
    print(json.dumps({k: v.source_file for k, v in configs.items()}, indent=2))
    return 0


def _cmd_airflow(args: argparse.Namespace) -> int:
    """Run an ``airflow`` command on costaware's state (e.g. ``standalone``)."""
    import os
    import shutil

    from costaware.app.airflow_env import airflow_env, ensure_airflow_db
    from costaware.settings import Settings

    settings = Settings.from_env()
    env = {**os.environ, **airflow_env(settings)}
    # `airflow standalone` starts its components as `airflow ...` subprocesses from PATH.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    # Local UI login: user admin; Airflow writes the generated password to this file.
    env.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    # On a laptop: one API worker and four LocalExecutor workers instead of one per CPU
    # (each an Airflow process of ~200 MB); a person's setting wins.
    env.setdefault("AIRFLOW__API__WORKERS", "1")
    env.setdefault("AIRFLOW__CORE__PARALLELISM", "4")
    ensure_airflow_db(settings)
    exe = shutil.which("airflow", path=os.path.dirname(sys.executable)) or "airflow"
    pw = settings.airflow_home / "simple_auth_manager_passwords.json.generated"
    print(
        f"AIRFLOW_HOME={settings.airflow_home}\nUI: http://localhost:8080  user: admin  "
        f"password: in {pw} (also printed by Airflow below)\n"
        "Costaware page: http://localhost:8080/plugin/costaware (Browse -> Costaware)",
        flush=True,
    )
    os.execve(exe, [exe, *args.args], env)
    return 0  # not reached


def _cmd_serve(args: argparse.Namespace) -> int:
    from costaware.serve.app import serve

    serve(args.model, host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="costaware", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("replay", help="feed a model's data batch by batch through its DAG")
    r.add_argument("model")
    r.add_argument("--batches", type=int, default=26, help="how many batches (default 26)")
    r.add_argument("--start", type=int, default=0, help="first batch index (default 0)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--verbose", action="store_true", help="task logs on the terminal")
    r.set_defaults(func=_cmd_replay)
    bt = sub.add_parser(
        "backtest",
        help="what a policy would have spent and lost on the model's data (oracle as bound)",
    )
    bt.add_argument("model")
    bt.add_argument("--from", dest="start", default=None, help="first batch: index, name or date")
    bt.add_argument("--to", dest="stop", default=None, help="last batch: index, name or date")
    bt.add_argument("--policy", default="costaware", help="costaware | periodic:K | drift | never")
    bt.add_argument(
        "--max-usd-per-point",
        type=float,
        default=None,
        help="$ per metric point × batch (default: the model's cost_policy)",
    )
    bt.add_argument("--no-events", action="store_true", help="summary only, no retrain list")
    bt.set_defaults(func=_cmd_backtest)
    rb = sub.add_parser("rollback", help="champion ← previous champion (or --to VERSION)")
    rb.add_argument("model")
    rb.add_argument("--to", default=None, help="version to make champion")
    rb.add_argument("--reason", default="", help="kept in the audit trail")
    rb.set_defaults(func=_cmd_rollback)
    st = sub.add_parser("status", help="aliases, recent decisions and audit rows")
    st.add_argument("model")
    st.add_argument("--last", type=int, default=10)
    st.set_defaults(func=_cmd_status)
    su = sub.add_parser("suites", help="regenerate the GX suites from the model configs")
    su.set_defaults(func=_cmd_suites)
    ck = sub.add_parser("check", help="validate every model config")
    ck.set_defaults(func=_cmd_check)
    af = sub.add_parser("airflow", help="run an airflow command on costaware's state")
    af.add_argument("args", nargs=argparse.REMAINDER, help="e.g. standalone, dags list")
    af.set_defaults(func=_cmd_airflow)
    sv = sub.add_parser("serve", help="serve MODEL's champion over HTTP, logging every prediction")
    sv.add_argument("model")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.set_defaults(func=_cmd_serve)
    from costaware.app.cli_costs import add_costs_commands

    add_costs_commands(sub)
    from costaware.app.stack import add_stack_command

    add_stack_command(sub)
    from costaware.app.init_model import add_init_model_command

    add_init_model_command(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CostawareError as exc:
        print(f"costaware: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
