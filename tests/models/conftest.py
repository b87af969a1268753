import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these tiny convs gain nothing from more, and on a shared
    machine extra spinning threads make step times erratic (10x seen on 2 busy cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
