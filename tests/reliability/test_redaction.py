"""Passwords in store URLs never reach the screen or a stored record (audit D5): one
redaction helper, and every f-string of the app layer that shows a store URL goes through
it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from catalog.engine import redact

REPO = Path(__file__).resolve().parents[2]
APP_LAYER = ("synthloop", "tasks", "flows", "benchmarks")
#: Settings properties that hold a store URL (and so, maybe, a password)
URL_PROPERTIES = {"tracking_uri", "catalog", "optuna_storage", "mlflow_uri", "catalog_url",
                  "optuna_url"}


@pytest.mark.parametrize("url, shown", [
    ("postgresql+psycopg://alice:s3cr%40t@db:5432/mlflow", "postgresql+psycopg://alice:***@db:5432/mlflow"),
    ("postgresql://db/mlflow?user=alice&password=s3cret&sslmode=require",
     "postgresql://db/mlflow?user=alice&password=***&sslmode=require"),
    ("http://bob:pw@127.0.0.1:5000", "http://bob:***@127.0.0.1:5000"),
    ("sqlite:////home/alice/.synthloop/mlflow.db", "sqlite:////home/alice/.synthloop/mlflow.db"),
    ("postgresql://alice@db/x", "postgresql://alice@db/x"),
])
def test_redact_hides_passwords_and_keeps_the_rest(url, shown):
    assert redact(url) == shown


def test_redact_takes_sqlalchemy_urls():
    from sqlalchemy.engine import make_url

    assert redact(make_url("postgresql://u:pw@h/d")) == "postgresql://u:***@h/d"


def _unredacted_url_fields(tree: ast.AST) -> list[int]:
    """Lines of f-string fields that interpolate a store URL property without redact()."""
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FormattedValue):
            continue
        value = node.value
        if isinstance(value, ast.Attribute) and value.attr in URL_PROPERTIES:
            bad.append(node.lineno)
    return bad


def test_no_store_url_is_formatted_into_text_unredacted():
    offenders = []
    for top in APP_LAYER:
        for path in sorted((REPO / top).rglob("*.py")):
            lines = _unredacted_url_fields(ast.parse(path.read_text(), str(path)))
            offenders += [f"{path.relative_to(REPO)}:{n}" for n in lines]
    assert offenders == [], "wrap these in catalog.engine.redact(): " + ", ".join(offenders)


def test_the_check_finds_an_unredacted_url():
    tree = ast.parse('print(f"MLflow: {settings.tracking_uri}")\nprint(f"{redact(s.catalog)}")')
    assert _unredacted_url_fields(tree) == [1]
