"""Loading a model by reference (``models:/``, ``runs:/``, ``scheme://``) without
unpickling anything: what the reference names is downloaded and the synthloop checkpoint
in it (:mod:`models.checkpoint`, weights only) is loaded; the MLflow model beside it is
never loaded, so a crafted one runs no code, and a reference without our checkpoint is
refused in one line."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from models.checkpoint import BEST, LAST
from realdata.errors import DataFormatError, first_line
from synthloop.tracking import MODEL_FILES_DIR, RUN_CHECKPOINT_DIR

T = TypeVar("T")


def is_model_uri(ref: str) -> bool:
    """Whether ``ref`` names an MLflow model (``models:/``, ``runs:/`` or any
    ``scheme://``) rather than a local checkpoint."""
    return "://" in str(ref) or str(ref).startswith(("models:/", "runs:/"))


def connect_for_models(models: list[str]) -> None:
    """Connect to the tracking store when any of ``models`` is a registered model; reading
    models never creates a store (a new one has nothing registered): a ``models:/`` or
    ``runs:/`` reference without the local SQLite store is a
    :class:`~synthloop.errors.UsageError` naming it."""
    from synthloop.errors import UsageError
    from synthloop.locks import sqlite_path
    from synthloop.settings import get_settings
    from synthloop.tracking import connect

    uris = [m for m in models if is_model_uri(m)]
    if not uris:
        return
    uri = get_settings().tracking_uri
    db = sqlite_path(uri)
    for m in uris:
        if db is not None and not db.is_file() and m.startswith(("models:/", "runs:/")):
            raise UsageError(f"--model {m}: no MLflow store at {db} (nothing was trained "
                             "with this SYNTHLOOP_HOME)")
    connect(uri, create=False)


class ModelReferenceError(DataFormatError):
    """A model reference (``models:/``, ``runs:/``, ``scheme://``) that cannot be loaded;
    the message names the reference exactly as given (a Path would fold its ``//``)."""

    def __init__(self, ref: str, problem: str):
        super().__init__(ref, problem)
        self.ref = ref
        self.args = (f"{ref}: {problem}",)


def load_model_reference(ref: str, load: Callable[[Path], T]) -> T:
    """Download what ``ref`` names and ``load`` the folder that holds its synthloop
    checkpoint: a registered model's ``extra_files/``, or a checkpoint folder given
    directly (``runs:/<id>/checkpoint``). A version registered before models carried
    their checkpoint falls back to its run's logged ``checkpoint/``.

    The MLflow model itself (pickle or pt2) is never loaded, so a crafted one runs no
    code; a reference without our checkpoint is a :class:`ModelReferenceError`, and so is
    a bad file in it (``load`` raises DataFormatError), named relative to the reference."""
    with tempfile.TemporaryDirectory(prefix="synthloop-model-") as tmp:
        root, folder = _download_checkpoint(ref, Path(tmp))
        try:
            return load(folder)
        except DataFormatError as e:
            raise ModelReferenceError(ref, f"{_relative(e.path, root)}: {e.problem}") from None


def _download_checkpoint(ref: str, tmp: Path) -> tuple[Path, Path]:
    """``(download root, folder or file holding the checkpoint)``."""
    root = _download(ref, ref, tmp / "model")
    folder = _checkpoint_in(root)
    run_id = _registered_run_id(ref) if folder is None else None
    if run_id:
        try:
            root = _download(ref, f"runs:/{run_id}/{RUN_CHECKPOINT_DIR}", tmp / "run")
            folder = _checkpoint_in(root)
        except ModelReferenceError:  # a run without a logged checkpoint
            pass
    if folder is None:
        raise ModelReferenceError(ref, f"not a synthloop model: no synthloop checkpoint "
                                       f"({MODEL_FILES_DIR}/{BEST}) in it, and its "
                                       "MLflow model is never loaded (unpickling it could run any code)")
    return root, folder


def _download(ref: str, uri: str, dst: Path) -> Path:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    if uri.startswith("file:") and not _local_path(uri).exists():  # MLflow's says less
        raise ModelReferenceError(ref, "no such file or folder")
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    except (MlflowException, OSError) as e:  # requests' errors are OSErrors too
        raise ModelReferenceError(ref, f"cannot be downloaded ({first_line(e)})") from None


def _local_path(file_uri: str) -> Path:
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    return Path(url2pathname(urlparse(file_uri).path))


def _checkpoint_in(root: Path) -> Path | None:
    if root.is_file():
        return root if root.suffix == ".pt" else None
    for folder in (root / MODEL_FILES_DIR, root):
        if any((folder / name).is_file() for name in (BEST, LAST)):
            return folder
    return None


_REGISTERED_VERSION = re.compile(r"^models:/([^/@]+)(?:/(\d+)|@([^/]+))/?$")


def _registered_run_id(ref: str) -> str | None:
    """The run of the registered version ``ref`` names (``models:/<name>/<version>`` or
    ``models:/<name>@<alias>``), if any."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    m = _REGISTERED_VERSION.match(ref)
    if m is None:
        return None
    name, version, alias = m.groups()
    client = MlflowClient()
    try:
        mv = client.get_model_version(name, version) if version else \
            client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    return mv.run_id or None


def _relative(path: Path, root: Path) -> str:
    base = root.parent if root.is_file() else root
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
