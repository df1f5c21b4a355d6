"""Absent is not error, on the embedded SQLite registry: only "does not exist" means none.

The old ``Registry.alias`` (35cc885) caught every exception and returned None, and there was
no way to read a model's aliases at once. (The unreachable-server case is in
``test_registry_outage.py``.)
"""

from __future__ import annotations

from costaware.models.registry import CHALLENGER, CHAMPION, PREVIOUS
from costaware.settings import Settings

from ..steps.helpers import MODEL, install_registry


def test_missing_model_or_alias_reads_as_none(settings: Settings) -> None:
    reg = install_registry(settings)
    assert reg.alias("no_such_model", CHAMPION) is None
    assert reg.aliases("no_such_model") == {}
    assert reg.versions("no_such_model") == []
    assert reg.alias(MODEL, CHAMPION) is None  # the model exists, the alias is not set
    assert reg.aliases(MODEL) == {}


def test_existing_model_reports_its_aliases(settings: Settings) -> None:
    reg = install_registry(settings)
    reg.set_alias(MODEL, CHAMPION, "2")
    reg.set_alias(MODEL, PREVIOUS, "1")
    reg.set_alias(MODEL, CHALLENGER, "3")
    assert reg.versions(MODEL) == ["1", "2", "3"]
    assert reg.aliases(MODEL) == {CHAMPION: "2", PREVIOUS: "1", CHALLENGER: "3"}
    assert (reg.alias(MODEL, CHAMPION), reg.alias(MODEL, PREVIOUS)) == ("2", "1")
    reg.delete_alias(MODEL, CHALLENGER)
    reg.delete_alias(MODEL, CHALLENGER)  # deleting an alias that is gone is not an error
    assert reg.alias(MODEL, CHALLENGER) is None
