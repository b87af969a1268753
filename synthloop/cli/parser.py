"""The command line's parser: one sub-command per job, each defined beside its code."""

from __future__ import annotations

import argparse

from synthloop.cli import data_commands, loop_commands, model_commands, server_commands

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="synthloop", description="The synthloop command line: "
                                "synthetic data, models and the feedback loop.")
    sub = p.add_subparsers(dest="command", required=True)
    loop_commands.add_commands(sub)  # demo first: the one to try
    data_commands.add_commands(sub)
    model_commands.add_commands(sub)
    server_commands.add_commands(sub)
    return p
