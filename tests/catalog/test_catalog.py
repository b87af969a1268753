"""The catalog API on SQLite and PostgreSQL: lineage, idempotency, conflicts, statuses,
rounds, migrations and the errors people see."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from catalog import Catalog, CatalogConflict, CatalogError, CatalogNotFound, default_url
from catalog.migrate import VERSION_TABLE
from catalog.schema import Base

# ---------------------------------------------------------------------------- lineage


def test_lineage_round_trip_walks_back_to_the_root(cat, make_chain):
    ids = make_chain(cat)
    steps = cat.lineage(ids["dist1"])
    assert [(s["kind"], s["id"]) for s in steps] == [
        ("distribution", ids["dist1"]), ("analysis", ids["analysis"]),
        ("training_run", ids["run"]), ("batch", ids["batch"]),
        ("distribution", ids["dist0"])]
    assert steps[0]["reason"] == "errors grow with |yaw|"
    json.dumps(steps)  # plain, JSON-able dicts
    assert cat.lineage(ids["dist0"]) == [steps[-1]]


def test_lineage_over_two_rounds_and_a_hand_edit(cat, make_chain):
    ids = make_chain(cat)
    cat.add_batch("batch-r1", ids["dist1"], 8, 100, "/data/b1", "c" * 64, [])
    cat.add_training_run("run-r1", "gaze", "dann", {"lr": 1e-3}, ["batch-r1"])
    cat.add_distribution("dist2", "base", "gaze", {"yaw": [-1, 1]}, parent_id=ids["dist1"])
    cat.add_analysis("analysis-r1", "run-r1", "real", {}, {}, next_distribution_id="dist2")
    cat.add_distribution("dist3", "edited", "gaze", {"yaw": [-1, 1], "pitch": [0, 0]},
                         parent_id="dist2", reason="hand edit")
    kinds = [(s["kind"], s["id"]) for s in cat.lineage("dist3")]
    assert kinds == [("distribution", "dist3"), ("distribution", "dist2"),
                     ("analysis", "analysis-r1"), ("training_run", "run-r1"),
                     ("batch", "batch-r1"), ("distribution", ids["dist1"]),
                     ("analysis", ids["analysis"]), ("training_run", ids["run"]),
                     ("batch", ids["batch"]), ("distribution", ids["dist0"])]


def test_lineage_ends_when_an_open_loop_keeps_its_distribution(cat, make_chain):
    ids = make_chain(cat)
    cat.add_analysis("same", ids["run"], "real", {}, {}, next_distribution_id=ids["dist0"])
    assert [s["id"] for s in cat.lineage(ids["dist0"])] == [ids["dist0"]]
    with pytest.raises(CatalogNotFound, match="dist-nope"):
        cat.lineage("dist-nope")


def test_get_distribution_parses_content_and_accepts_canonical_text(cat):
    text_content = '{"a":[1,2],"b":{"c":0.5}}'
    cat.add_distribution("dist-t", "t", "landmarks", text_content)
    row = cat.get_distribution("dist-t")
    assert row["content"] == {"a": [1, 2], "b": {"c": 0.5}}
    assert cat.get_distribution("dist-missing") is None
    # the same JSON, formatted differently or given as a dict, is the same content
    cat.add_distribution("dist-t", "t", "landmarks", {"b": {"c": 0.5}, "a": (1, 2)})
    cat.add_distribution("dist-t", "t", "landmarks", json.dumps(row["content"], indent=2))


# ---------------------------------------------------------------------------- idempotency


def test_re_adding_identical_rows_is_a_no_op(cat, make_chain):
    ids = make_chain(cat)
    before = {"batch": cat.get_batch(ids["batch"]), "run": cat.get_training_run(ids["run"]),
              "analysis": cat.get_analysis(ids["analysis"])}
    again = make_chain(cat)  # every add again, incl. add_batch(status="pending")
    assert again == ids
    assert cat.get_batch(ids["batch"]) == before["batch"]  # still accepted
    assert cat.get_training_run(ids["run"]) == before["run"]
    assert cat.get_analysis(ids["analysis"]) == before["analysis"]
    assert len(cat.batches()) == 1


CONFLICTS = [  # (a call that contradicts make_chain, the field it names)
    (lambda c, i: c.add_distribution(i["dist0"], "base", "gaze", {"yaw": [0, 1]}), "content"),
    (lambda c, i: c.add_distribution(i["dist0"], "other", "gaze", {"yaw": [-0.5, 0.5]}), "name"),
    (lambda c, i: c.add_batch(i["batch"], i["dist0"], 8, 100, "/data/b", "a" * 64,
                              [{"path": "shards/images-00000.npy", "sha256": "b" * 64}]), "seed"),
    (lambda c, i: c.add_training_run(i["run"], "gaze", "daln", {"lr": 1e-3}, [i["batch"]]),
     "method"),
    (lambda c, i: c.add_training_run(i["run"], "gaze", "dann", {"lr": 1e-3}, []), "batch_ids"),
    (lambda c, i: c.add_analysis(i["analysis"], i["run"], "other-split", {"deg": 6.1},
                                 [{"variable": "yaw", "mean_error": 9.0}]), "data_ref"),
    (lambda c, i: c.add_analysis(i["analysis"], i["run"], "mpiigaze:p00-p04/test",
                                 {"deg": 6.1}, [{"variable": "yaw", "mean_error": 9.0}],
                                 next_distribution_id=i["dist0"]), "next_distribution_id"),
    (lambda c, i: c.finish_training_run(i["run"], checkpoint="/other.pt",
                                        metrics={"val_deg": 4.2}), "checkpoint"),
]


def test_conflicting_rows_raise_naming_row_and_field(cat, make_chain):
    ids = make_chain(cat)
    for call, field in CONFLICTS:  # a conflict changes nothing, so one chain serves all
        with pytest.raises(CatalogConflict) as info:
            call(cat, ids)
        assert field in info.value.fields, field
        assert info.value.id in ids.values()
        assert info.value.id in str(info.value) and field in str(info.value)
        assert isinstance(info.value, CatalogError)
    assert make_chain(cat) == ids  # and the original rows still re-add cleanly


def test_write_once_links_fill_in_but_never_change(cat, make_chain):
    ids = make_chain(cat)
    run = cat.add_training_run(ids["run"], "gaze", "dann", {"lr": 1e-3}, [ids["batch"]],
                               mlflow_run_id="mlf-1")
    assert run["mlflow_run_id"] == "mlf-1" and run["status"] == "finished"
    with pytest.raises(CatalogConflict, match="mlflow_run_id"):
        cat.add_training_run(ids["run"], "gaze", "dann", {"lr": 1e-3}, [ids["batch"]],
                             mlflow_run_id="mlf-2")
    cat.add_analysis("an-late", ids["run"], "real", {}, [])
    assert cat.get_analysis("an-late")["next_distribution_id"] is None
    row = cat.add_analysis("an-late", ids["run"], "real", {}, [],
                           next_distribution_id=ids["dist1"])
    assert row["next_distribution_id"] == ids["dist1"]


def test_missing_references_are_named(cat):
    with pytest.raises(CatalogNotFound, match="dist-x"):
        cat.add_batch("batch-x", "dist-x", 1, 1, "/p", "0" * 64, [])
    cat.add_distribution("dist-a", "a", "gaze", {})
    with pytest.raises(CatalogNotFound, match="dist-parent"):
        cat.add_distribution("dist-b", "b", "gaze", {}, parent_id="dist-parent")
    with pytest.raises(CatalogNotFound, match="batch-y"):
        cat.add_training_run("run", "gaze", "dann", {}, ["batch-y"])
    with pytest.raises(CatalogNotFound, match="run-z"):
        cat.add_analysis("an", "run-z", "real", {}, [])
    with pytest.raises(CatalogNotFound, match="batch-x"):
        cat.set_batch_status("batch-x", "accepted")
    assert cat.get_batch("batch-x") is None and cat.get_training_run("run") is None


def test_values_are_normalised_to_json(cat):
    np = pytest.importorskip("numpy")
    cat.add_distribution("d", "d", "gaze", {})
    cat.add_batch("b", "d", np.int64(3), np.int32(5), "/p", "0" * 64, ())
    run = cat.add_training_run("r", "gaze", "dann", {"sizes": (1, 2), 3: np.float32(0.5)},
                               ["b"])
    assert run["config"] == {"sizes": [1, 2], "3": 0.5}
    done = cat.finish_training_run("r", checkpoint=None, metrics={
        "loss": float("nan"), "acc": np.float64(0.25), "curve": np.array([1.0, math.inf])},
        status="failed")
    assert done["metrics"] == {"loss": None, "acc": 0.25, "curve": [1.0, None]}
    json.dumps(done)
    with pytest.raises(CatalogError, match="config"):
        cat.add_training_run("r2", "gaze", "dann", {"f": object()}, ["b"])


# ---------------------------------------------------------------------------- statuses


def test_batch_status_transitions(cat):
    cat.add_distribution("d", "d", "gaze", {})
    for b in ("b1", "b2"):
        cat.add_batch(b, "d", 1, 1, "/p", "0" * 64, [])
    assert cat.set_batch_status("b1", "accepted", "12 expectations passed")["status"] == "accepted"
    assert cat.set_batch_status("b1", "accepted")["status_detail"] == "12 expectations passed"
    assert cat.set_batch_status("b2", "quarantined", "gaze out of range")["status"] == "quarantined"
    with pytest.raises(CatalogError, match="b2.*quarantined.*accepted"):
        cat.set_batch_status("b2", "accepted")
    with pytest.raises(CatalogError, match="pending"):
        cat.set_batch_status("b1", "pending")
    with pytest.raises(CatalogError, match="must be one of"):
        cat.set_batch_status("b1", "great")
    assert [b["id"] for b in cat.batches(status="accepted")] == ["b1"]
    assert [b["id"] for b in cat.batches(distribution_id="d")] == ["b1", "b2"]
    assert cat.batches(distribution_id="other") == []
    with pytest.raises(CatalogError, match="quarantined"):
        cat.add_training_run("r", "gaze", "dann", {}, ["b1", "b2"])
    # found later to be bad: an accepted batch may still be quarantined
    assert cat.set_batch_status("b1", "quarantined", "late")["status_detail"] == "late"


def test_training_run_and_loop_status_transitions(cat):
    cat.add_distribution("d", "d", "gaze", {})
    cat.add_batch("b", "d", 1, 1, "/p", "0" * 64, [])
    cat.add_training_run("r", "gaze", "dann", {}, ["b"])
    assert cat.get_training_run("r")["status"] == "running"
    done = cat.finish_training_run("r", checkpoint="/c.pt", metrics={"m": 1},
                                   mlflow_run_id="abc")
    assert (done["status"], done["mlflow_run_id"], done["batch_ids"]) == ("finished", "abc", ["b"])
    assert cat.finish_training_run("r", checkpoint="/c.pt", metrics={"m": 1}) == done
    with pytest.raises(CatalogError, match="finished.*failed"):
        cat.finish_training_run("r", checkpoint=None, metrics=None, status="failed")
    with pytest.raises(CatalogNotFound):
        cat.finish_training_run("nope", checkpoint=None, metrics=None)

    loop = cat.start_loop("L", "gaze", "closed", 3, {"rounds": 4})
    assert loop["status"] == "running" and loop["mlflow_run_id"] is None
    assert cat.start_loop("L", "gaze", "closed", 3, {"rounds": 4}) == loop
    with pytest.raises(CatalogConflict, match="seed"):
        cat.start_loop("L", "gaze", "closed", 4, {"rounds": 4})
    assert cat.set_loop_status("L", "running", mlflow_run_id="p1")["mlflow_run_id"] == "p1"
    assert cat.set_loop_status("L", "failed")["status"] == "failed"
    assert cat.set_loop_status("L", "running")["status"] == "running"  # resumed
    assert cat.set_loop_status("L", "finished")["status"] == "finished"
    with pytest.raises(CatalogError, match="final"):
        cat.set_loop_status("L", "running")
    with pytest.raises(CatalogError, match="mode"):
        cat.start_loop("M", "gaze", "sideways", 3, {})
    assert cat.get_loop("M") is None


def test_rounds_are_ordered_and_move_forward(cat, make_chain):
    ids = make_chain(cat)
    cat.start_loop("L", "gaze", "closed", 0, {})
    for k in (2, 0, 1):
        cat.upsert_round("L", k, distribution_id=ids["dist0"], mlflow_run_id=f"m{k}")
    assert [r["index"] for r in cat.rounds("L")] == [0, 1, 2]
    assert cat.rounds("other") == []
    cat.upsert_round("L", 0, batch_id=ids["batch"], status="generated")
    cat.upsert_round("L", 0, run_id=ids["run"], status="trained")
    cat.upsert_round("L", 0, analysis_id=ids["analysis"], status="analysed")
    row = cat.upsert_round("L", 0, real_error=6.25, status="done")
    assert row == cat.rounds("L")[0]
    assert (row["batch_id"], row["run_id"], row["analysis_id"], row["status"],
            row["real_error"], row["mlflow_run_id"]) == (
        ids["batch"], ids["run"], ids["analysis"], "done", 6.25, "m0")
    assert cat.upsert_round("L", 0, status="done", batch_id=ids["batch"]) == row  # a retry
    with pytest.raises(CatalogError, match="back"):
        cat.upsert_round("L", 0, status="trained")
    cat.upsert_round("L", 1, batch_id=ids["batch"])
    cat.add_batch("other", ids["dist0"], 9, 1, "/p", "0" * 64, [])
    with pytest.raises(CatalogConflict, match="batch_id"):
        cat.upsert_round("L", 1, batch_id="other")
    with pytest.raises(CatalogError, match="distribution_id"):
        cat.upsert_round("L", 5, status="started")
    with pytest.raises(CatalogNotFound, match="nope"):
        cat.upsert_round("nope", 0, distribution_id=ids["dist0"])
    with pytest.raises(TypeError, match="colour"):
        cat.upsert_round("L", 0, colour="red")


# ---------------------------------------------------------------------------- migrations


def test_schema_matches_the_migrations(cat, url):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE,
                                                         "compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
            assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all() == [
                (cat.revision,)]
    finally:
        engine.dispose()


def test_shares_a_database_with_another_alembic_user(sqlite_url, tmp_path):
    con = sqlite3.connect(tmp_path / "catalog.db")
    con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
    con.execute("INSERT INTO alembic_version VALUES ('mlflow-rev')")
    con.commit()
    Catalog(sqlite_url).close()
    assert con.execute("SELECT * FROM alembic_version").fetchall() == [("mlflow-rev",)]
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    con.close()


def test_a_newer_schema_is_refused_by_name(sqlite_url, tmp_path):
    Catalog(sqlite_url).close()
    con = sqlite3.connect(tmp_path / "catalog.db")
    con.execute(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")
    con.commit()
    con.close()
    with pytest.raises(CatalogError, match=r"catalog\.db.*'9999'.*newer"):
        Catalog(sqlite_url)


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize("url, says", [
    ("not a url", "not a database URL"),
    ("mysql+pymysql://me:s3cret@db/x", "not supported"),
    ("sqlite+nodriver:///x.db", "driver"),
    ("postgresql+psycopg://me:s3cret@127.0.0.1:1/x", "cannot open"),
])
def test_bad_urls_say_which_and_hide_the_password(url, says):
    with pytest.raises(CatalogError) as info:
        Catalog(url)
    message = str(info.value)
    assert says in message
    assert "s3cret" not in message
    assert url.split("://")[-1].split("@")[-1] in message


def test_a_file_that_is_not_a_database_is_named(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"these are my notes, not a database " * 100)
    with pytest.raises(CatalogError, match=rf"{bad}.*not a database"):
        Catalog(f"sqlite:///{bad}")
    with pytest.raises(CatalogError, match=rf"{tmp_path}.*directory"):
        Catalog(f"sqlite:///{tmp_path}")


def test_default_url_and_in_memory(tmp_path):
    assert default_url(tmp_path) == f"sqlite:///{tmp_path}/catalog.db"
    with Catalog("sqlite://") as mem:
        mem.add_distribution("d", "d", "gaze", {"x": 1})
        assert mem.get_distribution("d")["content"] == {"x": 1}
    home = tmp_path / "fresh" / "home"
    with Catalog(default_url(home)) as c:
        assert c.revision and (home / "catalog.db").is_file()


def test_import_has_no_side_effects_and_no_orchestration(tmp_path):
    code = (
        "import importlib.util, sys, catalog, catalog.store, catalog.migrate\n"
        "spec = importlib.util.spec_from_file_location('env', catalog.migrate.SCRIPTS / 'env.py')\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "bad = {'prefect', 'mlflow', 'optuna', 'great_expectations'} & {m.split('.')[0] "
        "for m in sys.modules}\n"
        "print(sorted(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []


def test_a_catalog_made_before_refined_batches_upgrades_keeping_its_rows(url):
    """0001 -> 0002 (batches.parent_id, batches.refiner) on a database that already holds
    a batch: the row survives, unparented; a refined child can then point at it."""
    from alembic import command

    from catalog import Catalog
    from catalog.engine import create_catalog_engine
    from catalog.migrate import make_config

    engine = create_catalog_engine(url)
    with engine.begin() as conn:
        command.upgrade(make_config(conn), "0001")
        conn.exec_driver_sql(
            "INSERT INTO distributions (id, name, task, content, created_at) "
            "VALUES ('d1', 'd', 'gaze', '{}', CURRENT_TIMESTAMP)")
        conn.exec_driver_sql(
            "INSERT INTO batches (id, distribution_id, seed, n, path, manifest_sha256, shards, "
            "status, created_at, updated_at) VALUES ('b1', 'd1', 0, 4, '/b1', 'x', '[]', "
            "'accepted', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
    engine.dispose()
    cat = Catalog(url)
    old = cat.get_batch("b1")
    assert old["status"] == "accepted" and old["parent_id"] is None and old["refiner"] is None
    child = cat.add_batch("b2", "d1", 0, 4, "/b2", "y", [], parent_id="b1", refiner="run-1")
    assert child["parent_id"] == "b1" and child["refiner"] == "run-1"
    with pytest.raises(Exception, match="parent of batch 'b3'"):
        cat.add_batch("b3", "d1", 0, 4, "/b3", "z", [], parent_id="nope")


def test_a_round_moves_to_its_refined_batch_only_until_it_has_a_run(cat, make_chain):
    ids = make_chain(cat)
    cat.add_batch("child", ids["dist0"], 7, 100, "/data/b-refined", "c" * 64, [],
                  parent_id=ids["batch"], refiner="run-r")
    cat.add_batch("other", ids["dist0"], 8, 100, "/data/o", "d" * 64, [])
    cat.start_loop("L", "gaze", "closed", 0, {})
    cat.upsert_round("L", 0, distribution_id=ids["dist0"], batch_id=ids["batch"])
    with pytest.raises(CatalogConflict):
        cat.upsert_round("L", 0, batch_id="other")  # not a refinement of the round's batch
    assert cat.upsert_round("L", 0, batch_id="child")["batch_id"] == "child"
    cat.upsert_round("L", 1, distribution_id=ids["dist0"], batch_id=ids["batch"],
                     run_id=ids["run"])
    with pytest.raises(CatalogConflict):  # trained on the parent: the record stays true
        cat.upsert_round("L", 1, batch_id="child")
