"""The error contract itself: a DataFormatError is one line whatever it is given (a
library's multi-line text, a file name with a line break), and the shared helpers that
show users' values keep messages short and printable."""

from __future__ import annotations

from pathlib import Path

from realdata.errors import DataFormatError, one_line, printable, shown


def test_a_multi_line_problem_is_folded_into_one_line():
    e = DataFormatError(Path("/d/labels.csv"), "cannot parse:\n  line 1\n\tline 2", line=3)
    assert str(e) == "/d/labels.csv:3: cannot parse: line 1 line 2"
    assert e.problem == "cannot parse: line 1 line 2"


def test_a_file_name_with_a_line_break_is_shown_escaped():
    e = DataFormatError(Path("/d/evil\nname.png"), "image cannot be decoded")
    assert "\n" not in str(e)
    assert str(e) == "'/d/evil\\nname.png': image cannot be decoded"


def test_an_ordinary_message_is_left_exactly_as_written():
    e = DataFormatError(Path("/d/a b.pts"), "n_points says 68 but  the block holds 67 points", line=71)
    assert str(e) == "/d/a b.pts:71: n_points says 68 but  the block holds 67 points"


def test_shown_values_are_printable_cut_and_survive_deep_nesting():
    assert shown("a\nb") == "'a\\nb'"
    assert len(shown("x" * 500)) == 60 and shown("x" * 500).endswith("...")
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert shown(deep) == "<a deeply nested value>"
    assert printable("ok text") == "ok text"
    assert one_line(ValueError("two\nlines")) == "two lines"
