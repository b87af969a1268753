"""The lineage catalog: which distribution made which batch, which batches trained which
run, which analysis of that run proposed the next distribution, and the loops that
chain them. SQLAlchemy on SQLite by default, PostgreSQL when scaled out; migrated by
alembic scripts shipped in ``catalog/migrations``.

Importing this package opens nothing: a database is touched only by ``Catalog(url)``.
"""

from catalog.engine import default_url
from catalog.errors import CatalogConflict, CatalogError, CatalogNotFound
from catalog.store import Catalog

__all__ = ["Catalog", "CatalogConflict", "CatalogError", "CatalogNotFound", "default_url"]
