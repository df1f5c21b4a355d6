"""Tag keys as people type them: one canonical key per spelling, and a record of every merge.

Real bills carry the same tag under several keys: ``env``, ``Env``, ``environment`` and
``" env"`` (a stray space from a console form) are one tag to the people reading showback,
and four to a ``GROUP BY``. A key is *normalized* by trimming whitespace and case-folding it;
an alias map from configuration (``{"environment": "env"}``) then renames whole spellings.
Every key that was renamed or folded is recorded so the report can show it: a merge nobody
sees is a silent re-attribution of money.

Azure writes tags without the enclosing braces (``"env": "prod","team": "a"``); such text is
read as the object it means and counted, never dropped. Text that is not JSON even then is
reported too; the row is then untagged.

Pure Python, no pandas: the streaming reader calls it once per distinct ``Tags`` value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from costaware.errors import ConfigError

# Flags a Tags value can carry (a bit each), summed per row by the reader.
MERGED = 1  # a key was folded or aliased into another spelling
CONFLICT = 2  # two spellings of one key in one charge, with different values
NO_BRACES = 4  # Azure's brace-less tag text, read as the object it means
BAD_JSON = 8  # not a JSON object even with braces: the charge is untagged


def normalize_key(key: str) -> str:
    """``" Environment "`` -> ``"environment"``: trimmed and case-folded."""
    return key.strip().casefold()


def parse_aliases(aliases: Mapping[str, str] | None, where: str = "tag_aliases") -> dict[str, str]:
    """An alias map as configured, checked: normalized spelling -> normalized canonical key.
    Chains (``a -> b``, ``b -> c``) are refused: a reader could not tell what ``a`` means."""
    out: dict[str, str] = {}
    for raw, target in (aliases or {}).items():
        if not isinstance(raw, str) or not isinstance(target, str):
            raise ConfigError(f"{where}: {raw!r} -> {target!r}: keys and targets must be text")
        src, dst = normalize_key(raw), normalize_key(target)
        if not src or not dst:
            raise ConfigError(f"{where}: {raw!r} -> {target!r}: empty tag key after trimming")
        if out.get(src, dst) != dst:
            raise ConfigError(
                f"{where}: {raw!r} maps to both {out[src]!r} and {dst!r} once keys are "
                "trimmed and case-folded; keep one"
            )
        if src != dst:
            out[src] = dst
    chained = sorted(k for k, v in out.items() if v in out)
    if chained:
        k = chained[0]
        raise ConfigError(
            f"{where}: {k!r} -> {out[k]!r} -> {out[out[k]]!r} is a chain; map every spelling "
            f"straight to the key people use ({k!r}: {out[out[k]]!r})"
        )
    return out


@dataclass
class TagNormalizer:
    """Turns a charge's raw ``Tags`` into canonical keys, and remembers what it merged."""

    aliases: dict[str, str] = field(default_factory=dict)
    # canonical key -> raw spellings seen for it (the canonical spelling included when seen)
    spellings: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, aliases: Mapping[str, str] | None) -> TagNormalizer:
        return cls(parse_aliases(aliases))

    def canonical(self, key: str) -> str:
        norm = normalize_key(key)
        return self.aliases.get(norm, norm)

    def normalize(self, tags: Mapping[str, Any]) -> tuple[dict[str, str], int]:
        """Canonical tags and the flags (MERGED, CONFLICT) of this one value. On a conflict
        the spelling that already is canonical wins, else the first in sorted order (stable
        from one run to the next); the report lists the conflicting rows."""
        out: dict[str, str] = {}
        exact: set[str] = set()
        flags = 0
        for raw in sorted(tags, key=str):
            key = self.canonical(str(raw))
            if not key:
                continue
            value = "" if tags[raw] is None else str(tags[raw]).strip()
            self.spellings.setdefault(key, set()).add(str(raw))
            if str(raw) != key:
                flags |= MERGED
            if key in out:
                if out[key] != value:
                    flags |= CONFLICT
                if str(raw) == key and key not in exact:
                    out[key] = value
                    exact.add(key)
                continue
            out[key] = value
            if str(raw) == key:
                exact.add(key)
        return out, flags

    def parse(self, raw: Any) -> tuple[dict[str, str], int]:
        """One ``Tags`` cell (JSON text, a dict, a list of key/value pairs, or null)."""
        if raw is None:
            return {}, 0
        if isinstance(raw, Mapping):
            return self.normalize(raw)
        if isinstance(raw, list):  # a MAP as [(key, value), ...]; BigQuery's [{key, value}]
            pairs = [(p["key"], p.get("value")) if isinstance(p, dict) else p for p in raw]
            return self.normalize({k: v for k, v in pairs})
        text = str(raw).strip()
        if not text or text in ("NULL", "{}"):
            return {}, 0
        extra = 0
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = json.loads("{" + text + "}")
                extra = NO_BRACES
            except ValueError:
                return {}, BAD_JSON
        if isinstance(value, list) and all(isinstance(p, dict) and "key" in p for p in value):
            tags, flags = self.parse(value)  # BigQuery's [{"key": ..., "value": ...}]
            return tags, flags | extra
        if not isinstance(value, dict):
            return {}, BAD_JSON
        tags, flags = self.normalize(value)
        return tags, flags | extra

    def merges(self) -> dict[str, list[str]]:
        """Canonical key -> the other spellings folded into it (only keys that had any)."""
        return {
            key: sorted(s for s in spelled if s != key)
            for key, spelled in sorted(self.spellings.items())
            if any(s != key for s in spelled)
        }
