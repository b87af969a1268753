"""Where a loop round trains: the decision from the loop's choice and what the Prefect API
reports, and a round refusing a device its process does not have."""

import pytest
import torch

from synthloop.errors import UsageError
from synthloop.loop.config import LoopConfig
from synthloop.loop.routing import training_place
from synthloop.loop.training import round_train_config
from synthloop.settings import Settings


@pytest.mark.parametrize(("choice", "online", "deployed", "place", "why"), [
    ("auto", 2, True, "gpu", "2 gpu worker(s) online"),
    ("auto", 0, True, "here", "no gpu worker online"),
    ("auto", 3, False, "here", "no train-round/train-round-gpu deployment"),
    ("here", 5, True, "here", "own run"),
    ("gpu", 0, True, "gpu", "waits for one"),
])
def test_where_a_round_trains(choice, online, deployed, place, why):
    got, reason = training_place(choice, gpu_workers_online=online, gpu_deployed=deployed)
    assert got == place and why in reason


def test_insisting_on_the_gpu_pool_without_its_deployment_says_what_to_run():
    with pytest.raises(UsageError, match="synthloop deploy"):
        training_place("gpu", gpu_workers_online=1, gpu_deployed=False)


def test_an_unknown_choice_is_refused():
    with pytest.raises(UsageError, match="auto, here, gpu"):
        training_place("tpu", gpu_workers_online=0, gpu_deployed=True)


def test_the_round_trains_on_the_device_of_its_process(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTHLOOP_DEVICE", "cpu")
    cfg = LoopConfig(task="gaze", real=str(tmp_path))
    assert round_train_config(cfg, 0, Settings().device).device == "cpu"
    monkeypatch.setenv("SYNTHLOOP_DEVICE", "cuda")
    if torch.cuda.is_available():
        assert round_train_config(cfg, 0, Settings().device).device == "cuda"
    else:  # a gpu pool worker on a host without CUDA fails at once, saying so
        with pytest.raises(UsageError, match="sees no CUDA device"):
            round_train_config(cfg, 0, Settings().device)
    with pytest.raises(UsageError, match="cpu, cuda or cuda:N"):
        round_train_config(cfg, 0, "mps")


class _Client:
    def __init__(self, workers=None, status: int | None = None):
        self.workers, self.status = workers or [], status

    def read_workers_for_work_pool(self, pool):
        if self.status is not None:
            import httpx
            from prefect.exceptions import PrefectHTTPStatusError

            req = httpx.Request("POST", f"http://api/work_pools/{pool}/workers/filter")
            resp = httpx.Response(self.status, request=req)
            raise PrefectHTTPStatusError(f"{self.status}", request=req, response=resp)
        return self.workers


def test_online_gpu_workers_are_counted_and_a_missing_pool_is_none():
    from types import SimpleNamespace

    from prefect.exceptions import PrefectHTTPStatusError

    from tasks.routing import _online_workers

    workers = [SimpleNamespace(status=SimpleNamespace(value=v)) for v in ("ONLINE", "OFFLINE", "ONLINE")]
    assert _online_workers(_Client(workers), "gpu") == 2
    assert _online_workers(_Client(status=404), "gpu") == 0  # no gpu pool: the API says 404
    with pytest.raises(PrefectHTTPStatusError):
        _online_workers(_Client(status=500), "gpu")  # anything else is not "no workers"
