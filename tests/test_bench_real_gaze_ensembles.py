"""Which seeds the real-gaze benchmark averages into an ensemble (``--ensemble-size``)."""

from benchmarks.bench_real_gaze import _ensembles


def test_all_seeds_form_one_ensemble_by_default():
    assert _ensembles({0: None, 1: None, 2: None}, None) == [[0, 1, 2]]


def test_consecutive_groups_in_training_order_and_no_partial_group():
    per_seed = {s: None for s in (3, 4, 5, 6, 7, 8, 9)}
    assert _ensembles(per_seed, 3) == [[3, 4, 5], [6, 7, 8]]  # seed 9 alone is no ensemble


def test_one_seed_is_no_ensemble():
    assert _ensembles({0: None}, None) == []
