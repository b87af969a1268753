"""Which labeled people an arm of ``bench_real_gaze`` trains on: a seeded draw, or the
analysis people in turn (``--rotate-people``), so that a few seeds cover everyone."""

from types import SimpleNamespace

from benchmarks.bench_real_gaze import _labeled_subjects


def _eyes(people: int, per: int = 3):
    return SimpleNamespace(groups=tuple(f"p{i:02d}" for i in range(people) for _ in range(per)))


def test_rotation_covers_every_person_once_before_any_repeats():
    eyes = _eyes(12)
    pool = list(range(0, 36))
    firsts = [_labeled_subjects(eyes, pool, "1", s, rotate=True)[1] for s in range(12)]
    assert sorted(p for (p,) in firsts) == sorted(set(eyes.groups))
    threes = [_labeled_subjects(eyes, pool, "3", s, rotate=True)[1] for s in range(4)]
    assert sorted(p for group in threes for p in group) == sorted(set(eyes.groups))
    assert _labeled_subjects(eyes, pool, "1", 12, rotate=True)[1] == firsts[0]  # wraps
    idx, (person,) = _labeled_subjects(eyes, pool, "1", 5, rotate=True)
    assert [eyes.groups[i] for i in idx] == [person] * 3


def test_the_draw_is_seeded_and_rotation_does_not_change_it():
    eyes = _eyes(12)
    pool = list(range(0, 36))
    draws = [_labeled_subjects(eyes, pool, "1", s)[1] for s in range(12)]
    assert draws == [_labeled_subjects(eyes, pool, "1", s)[1] for s in range(12)]
    assert len({p for (p,) in draws}) < 12  # a draw per seed repeats people
    assert _labeled_subjects(eyes, pool, "all", 3, rotate=True)[1] == sorted(set(eyes.groups))
