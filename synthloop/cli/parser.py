"""The command line's parser: one sub-command per job, each defined beside its code. Here:
what `synthloop --help` says first, and the same help layout for every sub-command."""

from __future__ import annotations

import argparse

from synthloop.cli import (
    data_commands,
    loop_commands,
    model_commands,
    refine_commands,
    server_commands,
)

__all__ = ["build_parser"]

DESCRIPTION = """\
A feedback loop for training vision models on synthetic data: render synthetic eyes
(or faces), check every batch, train a model, measure it on real data, and shift what
is rendered toward what the model gets wrong.

Start here:
  synthloop demo      a small loop, nothing to set up (about 5 minutes on 2 idle cores)
  synthloop ui        the Prefect dashboard and the MLflow UI
  synthloop deploy    run the flows from the dashboard (schedules stay paused)

Every command prints its own help: synthloop <command> --help."""

EPILOG = """\
Files go under SYNTHLOOP_HOME (default ./.synthloop). Exit codes: 0 done; 1 a batch
failed validation; 2 a problem with the input or the options, explained in one line;
3 anything else (a bug or a broken installation; the traceback is printed).
SYNTHLOOP_DEBUG=1 prints the traceback of every error."""


class _HelpFormatter(argparse.HelpFormatter):
    """Options say their default unless their help already does (or there is none to say)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or any(default is v for v in (None, False, argparse.SUPPRESS))
                or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="synthloop", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="<command>")
    loop_commands.add_commands(sub)  # demo first: the one to try
    data_commands.add_commands(sub)
    refine_commands.add_commands(sub)
    model_commands.add_commands(sub)
    server_commands.add_commands(sub)
    _same_layout(sub)
    return p


def _same_layout(sub: argparse._SubParsersAction) -> None:
    """Each sub-command's page opens with what it does (its one-line help, unless it has a
    longer description) and shows defaults, nested sub-commands included."""
    summaries = {a.dest: a.help for a in sub._choices_actions}
    for name, parser in sub.choices.items():
        parser.formatter_class = _HelpFormatter
        if not parser.description and summaries.get(name):
            text = summaries[name]
            parser.description = text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _same_layout(action)
