"""Where things live. Every store defaults to one folder (``SYNTHLOOP_HOME``, default
``./.synthloop``) and each can be overridden from the environment, e.g.
``SYNTHLOOP_MLFLOW_URI=http://127.0.0.1:5000`` or
``SYNTHLOOP_CATALOG_URL=postgresql+psycopg://127.0.0.1:5432/test``.

Reading settings has no side effects; ``ensure_home()`` creates the folders when a
command actually needs them.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYNTHLOOP_", extra="ignore")

    home: Path = Field(default=Path(".synthloop"), description="root of the embedded stores")
    mlflow_uri: str | None = Field(default=None, description="MLflow tracking URI")
    optuna_url: str | None = Field(default=None, description="Optuna storage URL")
    catalog_url: str | None = Field(default=None, description="lineage catalog database URL")
    prefect_home: Path | None = Field(default=None, description="PREFECT_HOME for the embedded server")
    device: str = Field(default="cpu", description="where the feedback loop's rounds train (cpu, "
                        "cuda, cuda:N); the gpu pool's workers run with SYNTHLOOP_DEVICE=cuda")
    shared: Path = Field(default=REPO_ROOT.parent / "shared",
                         description="real datasets and assets beside the project (may be absent)")

    @property
    def root(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def batches_dir(self) -> Path:
        return self.root / "batches"

    @property
    def outputs_dir(self) -> Path:
        return self.root / "outputs"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        """Where MLflow artifacts go with the embedded (SQLite) store."""
        return self.root / "mlartifacts"

    @property
    def optuna_storage(self) -> str:
        # never the MLflow file: both use an alembic_version table (stack.md)
        return self.optuna_url or f"sqlite:///{self.root / 'optuna.db'}"

    @property
    def catalog(self) -> str:
        return self.catalog_url or f"sqlite:///{self.root / 'catalog.db'}"

    @property
    def prefect_dir(self) -> Path:
        return (self.prefect_home or self.root / "prefect").expanduser().resolve()

    def ensure_home(self) -> Path:
        """Create the home's folders and check that they can be written: a read-only home
        (a copied or mounted one) fails here in one line, not minutes later deep inside
        a database or server that retries."""
        for d in (self.root, self.batches_dir, self.outputs_dir):
            d.mkdir(parents=True, exist_ok=True)
        for d in dict.fromkeys([self.root, self.prefect_dir if self.prefect_dir.exists() else self.root]):
            _check_writable(d)
        return self.root


def _check_writable(folder: Path) -> None:
    from synthloop.errors import UsageError

    probe = folder / f".write-probe-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise UsageError(f"{folder}: the project home is not writable ({e.strerror}); point "
                         "SYNTHLOOP_HOME (or SYNTHLOOP_PREFECT_HOME) at a writable folder") from None


def get_settings() -> Settings:
    return Settings()
