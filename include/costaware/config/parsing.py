"""YAML to Python: the fast loader, the parsed-YAML cache of the DAG files, and validation
errors as people read them (the file, the key, what is allowed)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid model config"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        got = e.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {loc}: {e['msg']}{shown}")
    return "\n".join(lines)


def _load_yaml(text: str) -> Any:
    """libyaml's C loader when PyYAML has it: 0.8 ms a config instead of 5.9 ms, and the DAG
    files load every config on every parse (bench/scale.py). On an error, parse again with
    PyYAML's own loader so the message keeps the offending line."""
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return yaml.safe_load(text)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - CSafeLoader is the safe loader
    except yaml.YAMLError:
        return yaml.safe_load(text)


class ParsedYamlCache:
    """Model YAML already parsed, by the SHA-256 of the file's text, in one JSON file.

    The DAG files load every model config on every parse (three files, every 30 s), and
    parsing YAML costs 1.3-2.3 ms a config even with libyaml; reading this cache and
    validating costs 0.17 ms (bench/results/scale.md). Keyed by content, not by mtime or
    size, so an edit is a new key whatever the file system's clock says. Only a parse that
    succeeded is kept, and only when JSON gives back exactly what YAML gave (a date, a set, a
    non-string key is parsed every time): validation, and every error a bad file shows, run
    on the same input as without the cache. Best effort: an unreadable or unwritable cache
    file is no cache."""

    VERSION = 1

    def __init__(self, file: Path) -> None:
        self.file = file
        self.kept: dict[str, Any] = {}
        self.used: dict[str, Any] = {}

    def open(self) -> ParsedYamlCache:
        try:
            data = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return self  # none yet, or torn by a crash: rebuilt by save()
        if isinstance(data, dict) and data.get("version") == self.VERSION:
            entries = data.get("entries")
            self.kept = entries if isinstance(entries, dict) else {}
        return self

    def parse(self, text: str) -> Any:
        key = hashlib.sha256(text.encode()).hexdigest()
        if key in self.kept:
            self.used[key] = self.kept[key]
            return self.used[key]
        raw = _load_yaml(text)
        try:
            if json.loads(json.dumps(raw)) == raw:
                self.used[key] = raw
        except (TypeError, ValueError):
            pass  # not JSON (a date, a set, NaN...): parsed from YAML every time
        return raw

    def save(self) -> None:
        """Keep what this load used (a file gone or edited drops its entry); written whole to
        a temporary file then renamed, so a parse running beside sees the old cache or this
        one, never half of it."""
        if self.used.keys() == self.kept.keys():
            return
        tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"version": self.VERSION, "entries": self.used}))
            os.replace(tmp, self.file)
        except OSError:
            with contextlib.suppress(OSError):  # the folder may not even exist
                tmp.unlink(missing_ok=True)
