"""What `synthloop --help` and every `synthloop <command> --help` say: plain prose (no
source markup), a description on every page and a help text on every option."""

import argparse
import re

import pytest

from synthloop.cli.parser import build_parser

MARKUP = re.compile(r"``|:class:|:func:|:meth:|%\(|\bNone\b")


def _pages(parser, name="synthloop"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _pages(sub, f"{name} {sub_name}")


PAGES = dict(_pages(build_parser()))


def test_every_command_has_a_page():
    assert {"synthloop demo", "synthloop deploy", "synthloop assets import-ict"} <= set(PAGES)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_help_page_is_plain_and_complete(name):
    parser = PAGES[name]
    text = parser.format_help()
    assert not MARKUP.search(text), f"{name}: source markup in the help: {MARKUP.search(text)[0]!r}"
    assert parser.description, f"{name} --help does not say what it does"
    bare = [a.option_strings[0] if a.option_strings else a.dest for a in parser._actions
            if not a.help and not isinstance(a, argparse._SubParsersAction)]
    assert not bare, f"{name}: options without a help text: {bare}"


def test_options_show_their_default():
    loop = PAGES["synthloop loop"].format_help()
    assert "(default: 3)" in loop and "(default: 0)" in loop  # --rounds, --seed
    deploy = PAGES["synthloop deploy"].format_help()
    assert "--schedules {off,on}" in deploy and "(default: cpu)" in deploy
