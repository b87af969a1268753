"""The built-in simulated target is written once however many processes sharing a home
ask for it at the same time (tuning workers did, and one failed on the other's folder)."""

from concurrent.futures import ThreadPoolExecutor

from synthloop.gaze.spec import SPEC
from synthloop.settings import Settings


def test_concurrent_first_uses_share_one_target(tmp_path):
    settings = Settings(home=tmp_path)
    with ThreadPoolExecutor(3) as ex:
        paths = list(ex.map(lambda _: SPEC.builtin_target(settings, n=60, seed=1), range(3)))
    assert len(set(paths)) == 1 and (paths[0] / "labels.csv").is_file()
    assert len((paths[0] / "labels.csv").read_text().splitlines()) == 60 + 1
    leftovers = [p.name for p in paths[0].parent.iterdir() if p.name != paths[0].name]
    assert all(name.endswith(".lock") for name in leftovers), leftovers
