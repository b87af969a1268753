"""The feedback loop's training sent to the ``gpu`` work pool when one is there
(:mod:`synthloop.loop.routing` decides; this module asks the Prefect API and runs the
deployment). The trained round is read back from the lineage catalog, which the GPU
worker writes to like any other: so the catalog, MLflow, the batches and the loop's
folder (``SYNTHLOOP_HOME``) must be shared between the hosts (docs/scale-out.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from synthloop.loop.config import LoopConfig
from synthloop.loop.routing import GPU_DEPLOYMENT, GPU_POOL, training_place


def _online_workers(client, pool: str) -> int:
    try:
        workers = client.read_workers_for_work_pool(pool)
    except ObjectNotFound:
        return 0
    except PrefectHTTPStatusError as e:  # this call reports a missing pool as a bare 404
        if e.response.status_code == 404:
            return 0
        raise
    return sum(1 for w in workers if str(getattr(w.status, "value", w.status)).upper() == "ONLINE")


def _deployed(client, name: str) -> bool:
    try:
        client.read_deployment_by_name(name)
    except ObjectNotFound:
        return False
    return True


def where_to_train(choice: str) -> str:
    """``"here"`` or ``"gpu"`` for this round, logged with the reason."""
    if choice == "here":
        return "here"
    with get_client(sync_client=True) as client:
        place, why = training_place(choice, gpu_workers_online=_online_workers(client, GPU_POOL),
                                    gpu_deployed=_deployed(client, GPU_DEPLOYMENT))
    get_run_logger().info("training %s: %s", "on the gpu pool" if place == "gpu" else "in this run", why)
    return place


def train_round_on_gpu(cfg: LoopConfig, lid: str, k: int, batch_dir: str, batch_id: str,
                       init_from: str | None, round_run: str) -> dict[str, Any]:
    """Run the round's training as a flow run of the gpu deployment (a subflow of the
    loop's run in the dashboard), wait for it, and return what ``train_round`` returns."""
    from prefect.deployments import run_deployment

    from tasks.loop import trained_round

    # no warm start is "": the server checks the parameters against the run form's schema,
    # where the field is text, and refuses None
    params = {"loop": dataclasses.asdict(cfg), "loop_id": lid, "round": k, "batch_dir": batch_dir,
              "batch_id": batch_id, "init_from": init_from or "", "round_run": round_run}
    run = run_deployment(GPU_DEPLOYMENT, parameters={"params": params}, timeout=None)
    if not run.state or not run.state.is_completed():
        state = run.state.type.value if run.state else "unknown"
        message = run.state.message if run.state else ""
        raise RuntimeError(f"{lid} round {k}: training on the {GPU_POOL} pool ended {state} "
                           f"(flow run {run.name}, {run.id}): {message}")
    done = trained_round(lid, k)
    if done is None:
        raise RuntimeError(f"{lid} round {k}: the {GPU_POOL} pool's run {run.name} completed but "
                           "the catalog has no finished training for the round: do the hosts "
                           "share one catalog (SYNTHLOOP_CATALOG_URL)?")
    return done
