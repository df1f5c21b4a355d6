"""``costaware init-model NAME --data FILE --target COLUMN [--time COLUMN]``: onboard a model.

Reads the data set (every row, or a systematic sample of ``sample_rows`` when it is larger),
infers the config (``model_inference.py``) and writes ``<models-dir>/NAME.yaml`` — every
section with a comment saying why — and the model's Great Expectations suite, after loading
the file back and checking it against the data (``source_check.py``). What inference cannot
know is returned as a checklist for a person. Nothing is overwritten without ``force``.
"""

from __future__ import annotations

import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from costaware.app.model_inference import DEFAULT_SAMPLE_ROWS, Inferred, infer
from costaware.app.source_check import check_source
from costaware.config import load_model_config
from costaware.errors import ConfigError
from costaware.settings import Settings

if TYPE_CHECKING:
    import pandas as pd


def read_data(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise ConfigError(f"--data {path}: no such file")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(path, low_memory=False)
    except Exception as exc:  # pandas/pyarrow raise many types for a bad file
        raise ConfigError(f"--data {path}: cannot be read: {exc}") from exc
    raise ConfigError(f"--data {path}: expected a .csv or .parquet file")


def render_yaml(inf: Inferred, source_note: str) -> str:
    """The config as YAML, one comment above each section saying why."""

    def flow(obj: Any) -> str:
        text = yaml.safe_dump(obj, default_flow_style=True, width=10**9, sort_keys=False)
        return text.removesuffix("\n").removesuffix("\n...").strip()  # a scalar ends "..."

    cfg = inf.config
    lines = [
        f"# Written by `costaware init-model` from {source_note}. Review every comment and",
        "# the checklist it printed, then delete this line.",
        f"name: {cfg['name']}",
        f"description: {flow(cfg['description'])}",
        "data:",
    ]
    for key, value in cfg["data"].items():
        if f"data.{key}" in inf.comments:
            lines += _comment(inf.comments[f"data.{key}"], "  ")
        lines.append(f"  {key}: {flow(value)}")
    lines.append("features:")
    lines += [f"  - {flow(f)}" for f in cfg["features"]]
    for key in ("target", "validation_suite", "drift", "metric", "evaluation", "training"):
        lines += _comment(inf.comments.get(key, ""))
        lines.append(_block(key, cfg[key], flow))
    for key in ("cost_policy", "tags", "airflow"):
        lines += _comment(inf.comments[key])
        lines.append(_block(key, cfg[key], flow))
    return "\n".join(lines) + "\n"


def _comment(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(
        text, width=95, initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# "
    )


def _block(key: str, value: Any, flow: Any) -> str:
    if not isinstance(value, dict) or len(flow(value)) < 80:
        return f"{key}: {flow(value)}"
    return "\n".join([f"{key}:", *(f"  {k}: {flow(v)}" for k, v in value.items())])


@dataclass(frozen=True)
class InitResult:
    config_path: Path
    suite_path: Path
    checklist: list[str]
    rows: int


def init_model(
    name: str,
    data: str | Path,
    target: str,
    time: str | None = None,
    models_dir: str | Path | None = None,
    force: bool = False,
    settings: Settings | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
) -> InitResult:
    """Write ``<models_dir>/<name>.yaml`` and its GX suite; refuse to overwrite unless
    ``force``. The written config is loaded back, validated and checked against the data."""
    from costaware.batches.validation import write_suite

    if not re.fullmatch(r"[a-z][a-z0-9_]{1,40}", name):
        raise ConfigError(
            f"init-model: model name {name!r} is not allowed; use 2-41 characters: a lower-case "
            "letter, then lower-case letters, digits or _ (e.g. churn_eu)"
        )
    settings = settings or Settings.from_env()
    folder = Path(models_dir) if models_dir else settings.models_dir
    path = Path(data).resolve()
    config_path = folder / f"{name}.yaml"
    suite_path = settings.gx_dir / "expectations" / f"{name}_batch.json"
    existing = [str(p) for p in (config_path, suite_path) if p.exists()]
    if existing and not force:
        raise ConfigError(
            f"init-model {name}: {' and '.join(existing)} already exist(s); not overwritten. "
            "Pass --force to replace, or choose another NAME"
        )
    try:
        source = str(path.relative_to(settings.project_root))
    except ValueError:
        source = str(path)  # outside the project: replay reads it by its absolute path
    frame = read_data(path)
    inf = infer(name, frame, target, time, source, sample_rows=sample_rows)
    text = render_yaml(inf, source)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.yaml.{os.getpid()}.tmp"
    tmp.write_text(text)
    try:
        cfg = load_model_config(tmp)
        check_source(cfg, frame, str(path))
    except ConfigError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, config_path)
    cfg = load_model_config(config_path)
    suite = write_suite(cfg, settings.gx_dir)
    return InitResult(config_path, suite, inf.checklist, inf.rows)


def add_init_model_command(sub: Any) -> None:
    """``costaware init-model``: registered by ``cli.build_parser``."""
    p = sub.add_parser(
        "init-model",
        help="write a model's YAML and GX suite from a data file",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("name", help="the model's name: lower case, digits, _ (e.g. churn_eu)")
    p.add_argument("--data", required=True, help="CSV or Parquet file with the target column")
    p.add_argument("--target", required=True, help="the column to predict")
    p.add_argument("--time", default=None, help="timestamp column (default: the row order)")
    p.add_argument("--models-dir", default=None, help="where to write NAME.yaml")
    p.add_argument("--force", action="store_true", help="overwrite an existing config/suite")
    p.add_argument("--sample-rows", type=int, default=DEFAULT_SAMPLE_ROWS)
    p.set_defaults(func=_cmd_init_model)


def _cmd_init_model(args: Any) -> int:
    settings = Settings.from_env()
    out = init_model(
        args.name,
        args.data,
        args.target,
        time=args.time,
        models_dir=args.models_dir,
        force=args.force,
        settings=settings,
        sample_rows=args.sample_rows,
    )
    print(f"wrote {out.config_path}\nwrote {out.suite_path}\n({out.rows} rows read)")
    print("\nCheck by hand before the first real run:")
    for item in out.checklist:
        print(f"  - {item}")
    env = ""
    if out.config_path.parent.resolve() != settings.models_dir.resolve():
        env = f"COSTAWARE_MODELS_DIR={out.config_path.parent} "
    print(f"\nThen: {env}costaware replay {args.name} --batches 4")
    return 0
