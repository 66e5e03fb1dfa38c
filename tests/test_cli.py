"""Every `bsm` subcommand answers --help (argparse expands % in help strings only at print time)."""
import argparse

import pytest

from bsm_data.cli import build_parser


def _subcommands(parser: argparse.ArgumentParser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, (*path, name))


def test_every_subcommand_formats_its_help():
    seen = []
    for path, parser in _subcommands(build_parser()):
        text = parser.format_help()
        assert "usage: bsm" in text, path
        seen.append(" ".join(path))
    for expected in ("demo", "data refseq", "data build", "train", "eval", "export", "query", "fetch refseq", "registry build"):
        assert expected in seen


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["eval", "--help"]])
def test_help_exits_zero(argv, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 0
    assert "usage: bsm" in capsys.readouterr().out
