"""A SageMaker job's model as a file the registry takes, and which set-ups can make one."""

from __future__ import annotations

from pathlib import Path

from costaware.config import SageMakerSpec
from costaware.errors import ConfigError, TrainingError

# XGBoost's legacy binary model format starts with these bytes. The built-in algorithm's
# image 1.7-1 saves its ``xgboost-model`` in it (``Booster.save_model`` without a .json/.ubj
# name); XGBoost removed reading it in 3.1 (checked: a model saved by xgboost 1.7.6 that way
# fails to load in 3.2.0 with "The binary format has been deprecated in 1.6 and removed in
# 3.1"; the same booster pickled by 1.7.6 loads, but the 1.7 image does not pickle).
LEGACY_BINARY = b"binf"


def registrable(spec: SageMakerSpec) -> None:
    """Refuse, before a job is paid for, a SageMaker set-up whose model the retrain DAG
    could not register: only script mode (costaware's trainer in a container of yours) makes
    a model in costaware's own format."""
    if spec.script:
        return
    image = spec.image or f"the built-in XGBoost image {spec.image_version}"
    raise ConfigError(
        f"training.sagemaker: {image} cannot train a challenger the retrain DAG can "
        "register: the built-in XGBoost algorithm saves its model in XGBoost's legacy binary "
        "format, which this xgboost (3.1 and later) cannot load, and it knows neither the "
        "model's categories nor its target kind. Use script mode: image (a container with "
        "costaware and SageMaker's training toolkit installed), script (one calling "
        "costaware.models.training.sagemaker_container.main, e.g. "
        "examples/sagemaker/costaware_train.py) and source (the s3:// tarball holding it)"
    )


def fetch_model(uri: str, dest: Path, conn_id: str | None = None) -> Path:
    """The model in a job's ``model.tar.gz`` as a file the registry takes: costaware's own
    ``model.pkl`` (script mode), or an ``xgboost-model`` in JSON/UBJ as ``dest/model.ubj``. A
    missing artifact, one without a model, or a model in the legacy binary format (the
    built-in 1.7 image's) is an error that says which."""
    import io
    import tarfile

    from costaware.models.training.sagemaker_container import MODEL_FILE
    from costaware.store import storage

    src = storage.location(uri, conn_id)
    if not src.exists():
        raise TrainingError(
            f"model artifact {uri} does not exist: SageMaker reported it, nothing is there "
            "(check the job's output path and that its role may write to it)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(storage.read_bytes(src)), mode="r:gz") as tar:
        members = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}
        name = next((n for n in (MODEL_FILE, "xgboost-model") if n in members), None)
        handle = tar.extractfile(members[name]) if name is not None else None
        if handle is None:
            raise TrainingError(
                f"{uri} holds {sorted(members)}: neither costaware's {MODEL_FILE} nor an "
                "xgboost-model"
            )
        raw = handle.read()
    if name == MODEL_FILE:
        out = dest / MODEL_FILE
        out.write_bytes(raw)
        return out
    if raw.startswith(LEGACY_BINARY):
        raise TrainingError(
            f"{uri}: its xgboost-model is in XGBoost's legacy binary format (the built-in "
            "1.x image's), which this xgboost cannot load; train in script mode "
            "(training.sagemaker.script) to get costaware's model format"
        )
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    out = dest / "model.ubj"
    booster.save_model(str(out))
    return out
