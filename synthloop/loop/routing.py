"""Where a round trains: in the loop's own flow run, or on the ``gpu`` work pool (a flow
run of the ``train-round/train-round-gpu`` deployment that a GPU worker picks up). The
decision is made each round, from the choice the loop was given and what the Prefect API
reports at that moment; the API calls live in :mod:`tasks.routing`."""

from __future__ import annotations

from synthloop.errors import UsageError

CHOICES = ("auto", "here", "gpu")
GPU_POOL = "gpu"
GPU_DEPLOYMENT = "train-round/train-round-gpu"


def training_place(choice: str, *, gpu_workers_online: int, gpu_deployed: bool) -> tuple[str, str]:
    """``("here" | "gpu", why)``. ``auto`` trains on the gpu pool when the deployment
    exists and at least one of the pool's workers is online, else here; ``gpu`` insists
    on the deployment (a run then waits for a worker); ``here`` never leaves the run."""
    if choice not in CHOICES:
        raise UsageError(f"train_on must be one of {', '.join(CHOICES)}, not {choice!r}")
    if choice == "here":
        return "here", "asked to train in the loop's own run"
    if choice == "gpu":
        if not gpu_deployed:
            raise UsageError(f"train_on=gpu, but the {GPU_DEPLOYMENT} deployment does not exist "
                             "on this Prefect API: run `synthloop deploy` first")
        return "gpu", (f"asked for the {GPU_POOL} pool ({gpu_workers_online} worker(s) online; "
                       "the run waits for one)")
    if gpu_deployed and gpu_workers_online:
        return "gpu", f"{gpu_workers_online} {GPU_POOL} worker(s) online"
    if not gpu_deployed:
        return "here", f"no {GPU_DEPLOYMENT} deployment"
    return "here", f"no {GPU_POOL} worker online"
