"""Where costaware's files live: one root URL (``COSTAWARE_STORAGE``), local or object storage.

Every data location (landing, labels, accepted batches, quarantine, reports, probes, drift
references, training work) is a path under that root. A ``file://`` root (the default) gives
plain :class:`pathlib.Path` objects, so the single-machine behaviour is exactly what it was.
An ``s3://bucket/prefix`` or ``gs://bucket/prefix`` root gives Airflow's
:class:`~airflow.sdk.ObjectStoragePath` (fsspec underneath), whose filesystem is built from
an Airflow connection, so credentials never appear in costaware's configuration. Without
Airflow (the core used as a library), remote roots fall back to ``universal_pathlib`` with
fsspec's own credential chain.

Both kinds of path share the pathlib API used here (``/``, ``name``, ``stem``, ``suffix``,
``exists``, ``iterdir``, ``open``, ``unlink``, ``mkdir``). What differs is atomicity, and it
lives in this module: a local write goes to a temporary file renamed into place; an object
store PUT is atomic already (readers see the old object or the new one, never half), so the
object is written directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import pandas as pd

Loc: TypeAlias = Any  # pathlib.Path or ObjectStoragePath / UPath: the pathlib API below
REMOTE_SCHEMES = ("s3", "gs", "gcs")
DEFAULT_CONN_IDS = {
    "s3": "aws_default",
    "gs": "google_cloud_default",
    "gcs": "google_cloud_default",
}


def scheme(url: str) -> str:
    return urlsplit(url).scheme if "://" in url else "file"


def root(url: str, conn_id: str | None = None) -> Loc:
    """The storage root for a URL (``file:///abs``, a plain path, ``s3://bucket/prefix``)."""
    kind = scheme(url)
    if kind == "file":
        return Path(urlsplit(url).path if url.startswith("file://") else url).resolve()
    if kind not in REMOTE_SCHEMES:
        raise ValueError(
            f"COSTAWARE_STORAGE={url!r}: unknown scheme {kind!r}; use file:///path, "
            "s3://bucket/prefix or gs://bucket/prefix"
        )
    if not urlsplit(url).netloc:
        raise ValueError(f"COSTAWARE_STORAGE={url!r} names no bucket; use {kind}://bucket/prefix")
    return location(url, conn_id or DEFAULT_CONN_IDS[kind])


def location(text: str | os.PathLike[str], conn_id: str | None = None) -> Loc:
    """A path stored as text (the ledger keeps ``str(path)``) back as a path. An object-store
    URL keeps its connection: Airflow writes it as ``s3://conn_id@bucket/key``."""
    text = os.fspath(text)
    kind = scheme(text)
    if kind == "file":
        return Path(urlsplit(text).path if text.startswith("file://") else text)
    try:
        from airflow.sdk import ObjectStoragePath
    except ImportError:  # the core without Airflow: fsspec's own credentials
        from upath import UPath

        return UPath(text)
    return ObjectStoragePath(text, conn_id=conn_id) if conn_id else ObjectStoragePath(text)


def is_local(loc: Loc) -> bool:
    return isinstance(loc, Path)


def text(loc: Loc) -> str:
    """How a path is written into the ledger, a report or a log: a local path as is, an object
    as its URL (with the connection id Airflow puts in it, never a secret)."""
    return str(loc)


def ensure_dir(loc: Loc) -> Loc:
    """Make a folder (object stores have none: nothing to do)."""
    if is_local(loc):
        loc.mkdir(parents=True, exist_ok=True)
    return loc


def write_bytes(dest: Loc, payload: bytes) -> Loc:
    """Write a file whole or not at all (see the module docstring)."""
    if is_local(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.write_bytes(payload)
        os.replace(tmp, dest)
    else:
        with dest.open("wb") as f:
            f.write(payload)
    return dest


def write_text(dest: Loc, value: str) -> Loc:
    return write_bytes(dest, value.encode())


def write_json(dest: Loc, value: Any) -> Loc:
    return write_text(dest, json.dumps(value, indent=2, default=str))


def read_bytes(src: Loc) -> bytes:
    with src.open("rb") as f:
        return bytes(f.read())


def read_json(src: Loc) -> Any:
    return json.loads(read_bytes(src))


def write_parquet(dest: Loc, frame: pd.DataFrame) -> Loc:
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return write_bytes(dest, buf.getvalue())


def read_parquet(src: Loc, columns: list[str] | None = None) -> pd.DataFrame:
    import pandas as pd

    if is_local(src):
        return pd.read_parquet(src, columns=columns)
    with src.open("rb") as f:
        return pd.read_parquet(f, columns=columns)


def read_csv(src: Loc, **kwargs: Any) -> pd.DataFrame:
    import pandas as pd

    if is_local(src):
        return pd.read_csv(src, **kwargs)
    with src.open("rb") as f:
        return pd.read_csv(f, **kwargs)


def copy_file(src: Loc, dest: Loc) -> Loc:
    """Copy one file byte for byte, whole or not at all."""
    if is_local(src) and is_local(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
        return dest
    with src.open("rb") as f:
        if is_local(dest):
            return write_bytes(dest, f.read())
        with dest.open("wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)
    return dest


def files(folder: Loc, suffixes: tuple[str, ...] | None = None) -> list[Loc]:
    """The files directly in a folder (none when it does not exist), optionally by suffix."""
    if not is_local(folder):  # another worker may have written since fsspec cached a listing
        with contextlib.suppress(Exception):
            folder.fs.invalidate_cache(folder.path)
    if not folder.exists():
        return []
    found = [p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".tmp")]
    return [p for p in found if suffixes is None or p.suffix in suffixes]


def mtime(loc: Loc) -> float:
    """When a file last changed (seconds since the epoch); object stores give LastModified."""
    st = loc.stat()
    value: Any = getattr(st, "st_mtime", None)
    if value is None and hasattr(st, "get"):
        value = st.get("LastModified") or st.get("mtime") or st.get("created")
    if value is not None and hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value or 0.0)


def size(loc: Loc) -> int:
    st = loc.stat()
    return int(getattr(st, "st_size", None) or (st.get("size") if hasattr(st, "get") else 0) or 0)


@contextlib.contextmanager
def local_file(src: Loc) -> Iterator[Path]:
    """A local path to read a file from (the file itself, or a temporary download), for
    libraries that want a file name (XGBoost, MLflow)."""
    if is_local(src):
        yield src
        return
    with tempfile.TemporaryDirectory(prefix="costaware-") as tmp:
        dest = Path(tmp) / src.name
        copy_file(src, dest)
        yield dest


def sync(
    src: Loc, dest: Loc, skip: tuple[str, ...] = (), always: tuple[str, ...] = (".json",)
) -> list[str]:
    """Copy the files of folder ``src`` that ``dest`` lacks or holds in another size, and
    every file whose suffix is in ``always`` (small files rewritten in place); one level, names
    in ``skip`` left out. Returns the names copied. Keeps a training job's local work folder and
    its copy on object storage in step (checkpoints are written once, under new names)."""
    have = {p.name: size(p) for p in files(dest)}
    copied = []
    for p in files(src):
        if p.name in skip:
            continue
        if p.suffix in always or have.get(p.name) != size(p):
            copy_file(p, dest / p.name)
            copied.append(p.name)
    return copied
