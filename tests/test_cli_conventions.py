"""Every command spells its shared options alike (:mod:`dbm.cli`): ``--out``, ``--quiet``, ``--threads``,
``--device``, ``--version``, each with help, under the command's own name in the usage line.

The parsers are built in-process (``build_parser`` of each command module); one subprocess checks
``--version`` end to end.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

import evaluation  # noqa: F401  (loads the suite's dbm, not the standard library's)
import dbm  # noqa: E402
from dbm.cli import (QUIET_HELP, THREAD_VARIABLES, THREADS_HELP, VERSION_HELP, OneLineParser,  # noqa: E402
                     add_common_options, apply_threads, positive_int)
from dbm.device import DEVICE_HELP  # noqa: E402

QUIET, THREADS, DEVICE, OUT = "--quiet", "--threads", "--device", "--out"
ALL = frozenset({OUT, QUIET, THREADS, DEVICE})
SHARED = (OUT, QUIET, THREADS, DEVICE)

#: The one table of the commands: module -> (program in the usage line, hidden old spellings,
#: {sub-command (None: the command itself): the shared options it has}). A shared option missing
#: from a row must be absent from that parser, so the table states exactly what each command takes.
COMMANDS = {
    "evaluation.run": ("python -m evaluation.run", {}, {None: ALL}),
    "evaluation.predict": ("blur-map", {}, {None: ALL}),
    "evaluation.speed": ("python -m evaluation.speed", {}, {None: ALL}),
    "evaluation.applications": ("python -m evaluation.applications", {},
                                {None: frozenset(), "segment": ALL, "degree": ALL, "magnify": ALL, "figures": ALL}),
    # no progress to silence, no threaded or torch work: --out only
    "evaluation.fidelity": ("python -m evaluation.fidelity", {}, {None: {OUT}}),
    "evaluation.fig2": ("python -m evaluation.fig2", {}, {None: {OUT, QUIET}}),
    "evaluation.download": ("python -m evaluation.download", {"--to": OUT}, {None: {OUT, QUIET}}),
    "evaluation.demo": ("python -m evaluation.demo", {"--to": OUT}, {None: {OUT}}),
    "dbm.train": ("python -m dbm.train", {"--no-progress": QUIET}, {None: ALL}),
    # no progress bar: its one line is the result
    "dbm.quantize": ("python -m dbm.quantize", {}, {None: {OUT, THREADS, DEVICE}}),
    "dbm.corpus": ("python -m dbm.corpus", {},
                   {None: frozenset(), "fetch": {OUT}, "build": {OUT, QUIET, THREADS}}),
}

ROWS = [(module, sub) for module, (_, _, subs) in COMMANDS.items() for sub in subs]


def _parser(module: str) -> argparse.ArgumentParser:
    return importlib.import_module(module).build_parser()


def _sub(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser:
    if name is None:
        return parser
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices[name]


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


def _all_parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _all_parsers(sub)


def test_the_table_lists_every_command():
    """Every module that runs as a command (``if __name__ == "__main__"``) is in :data:`COMMANDS`."""
    found = {f"{p.parent.name}.{p.stem}" for folder in ("dbm", "evaluation") for p in (REPO / folder).glob("*.py")
             if re.search(r'^if __name__ == "__main__":', p.read_text(), flags=re.M)}
    assert found == set(COMMANDS)


def test_the_installed_commands_are_in_the_table(monkeypatch):
    """``blur-eval``, ``blur-map`` and ``dbm-train`` of ``pyproject.toml`` run the ``main`` of modules of the table."""
    import dbm.train
    import evaluation.predict

    scripts = dict(re.findall(r'^([\w-]+) = "([\w.]+:\w+)"', (REPO / "pyproject.toml").read_text(), flags=re.M))
    assert scripts == {"blur-eval": "evaluation.run:main", "blur-map": "evaluation:blur_map",
                       "dbm-train": "evaluation:dbm_train"}
    monkeypatch.setattr(evaluation.predict, "main", lambda: 42)
    assert evaluation.blur_map() == 42  # blur-map is evaluation.predict's main
    monkeypatch.setattr(dbm.train, "main", lambda: 43)
    assert evaluation.dbm_train() == 43  # dbm-train is dbm.train's main


@pytest.mark.parametrize(("module", "sub"), ROWS, ids=[f"{m}{' ' + s if s else ''}" for m, s in ROWS])
def test_shared_options_usage_and_help(module, sub):
    prog, _, subs = COMMANDS[module]
    parser = _sub(_parser(module), sub)
    assert isinstance(parser, OneLineParser)
    name = prog if sub is None else f"{prog} {sub}"
    assert parser.prog == name and parser.format_usage().startswith(f"usage: {name} ")
    options = _options(parser)
    expected = set(subs[sub])
    assert {o for o in SHARED if o in options} == expected
    if OUT in expected:
        assert options[OUT].type is Path and options[OUT].help
    if QUIET in expected:
        assert isinstance(options[QUIET], argparse._StoreTrueAction) and options[QUIET].help == QUIET_HELP
    if THREADS in expected:
        assert options[THREADS].type is positive_int and options[THREADS].default is None
        assert options[THREADS].help == THREADS_HELP
    if DEVICE in expected:
        assert options[DEVICE].default == "auto" and options[DEVICE].help.startswith(DEVICE_HELP)
    # --version on the command itself, not on its sub-commands
    assert ("--version" in options) == (sub is None)
    if sub is None:
        assert options["--version"].help == VERSION_HELP


@pytest.mark.parametrize("module", list(COMMANDS))
def test_every_option_and_sub_command_has_help(module):
    for parser in _all_parsers(_parser(module)):
        for action in parser._actions:
            where = f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
            assert action.help not in (None, argparse.SUPPRESS) and action.help.strip(), f"{where}: no help"
            for choice in getattr(action, "_choices_actions", []):
                assert choice.help and choice.help.strip(), f"{where} {choice.dest}: no help"
        parser.format_help()  # every help text formats (no stray % in it)


@pytest.mark.parametrize("module", list(COMMANDS))
def test_version_prints_the_suite_version_and_exits_0(module, capsys):
    prog = COMMANDS[module][0]
    with pytest.raises(SystemExit) as exc:
        importlib.import_module(module).main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"{prog} {dbm.__version__}\n"


def test_version_of_a_command_run_as_a_program(tmp_path):
    """End to end: ``python -m evaluation.predict --version`` (``blur-map``) prints and exits 0."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "evaluation.predict", "--version"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"blur-map {dbm.__version__}\n", "")


def test_the_version_is_written_once():
    """``pyproject.toml`` takes the version from ``dbm.__version__`` instead of writing it again."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "dbm.__version__"}


@pytest.mark.parametrize("module", [m for m, (_, aliases, _) in COMMANDS.items() if aliases])
def test_old_spellings_are_hidden_aliases(module):
    prog, aliases, subs = COMMANDS[module]
    parser = _parser(module)
    assert parser.aliases() == aliases
    text = parser.format_help()
    required = {"evaluation.download": ["cuhk"], "dbm.train": ["--data", "d", "--out", "o"]}.get(module, [])
    for alias, option in aliases.items():
        assert alias not in text and option in text
        dest = _options(parser)[option].dest
        if option == OUT:
            for argv in ([alias, "somewhere"], [f"{alias}=somewhere"]):
                assert getattr(parser.parse_args([*required, *argv]), dest) == Path("somewhere")
        else:
            assert getattr(parser.parse_args([*required, alias]), dest) is True
            assert getattr(parser.parse_args(required), dest) is False


def test_a_required_out_is_satisfied_by_its_alias_and_named_when_missing():
    from dbm.cli import CLIError

    parser = _parser("evaluation.download")
    assert parser.parse_args(["cuhk", "--to", "x"]).out == Path("x")
    with pytest.raises(CLIError, match=r"^the following arguments are required: --out; see python -m evaluation"):
        parser.parse_args(["cuhk"])
    # after "--" an alias is a value, not an option
    p = OneLineParser(prog="p")
    p.add_argument("names", nargs="*", help="names")
    add_common_options(p, out={"default": None, "help": "where"}, aliases={"--to": OUT})
    assert p.parse_args(["--", "--to"]).names == ["--to"]


def test_bad_threads_is_one_line_and_exit_2(capsys):
    from evaluation import speed

    assert speed.main(["--threads", "0", "--methods", "no_such_method"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: argument --threads: expected a whole number >= 1, got 0")


def test_run_cli_applies_threads_before_the_command(monkeypatch):
    import evaluation.cli as cli

    seen = []
    monkeypatch.setattr(cli, "apply_threads", lambda n: seen.append(("threads", n)))
    parser = OneLineParser(prog="p")
    add_common_options(parser, out={"default": Path("o"), "help": "where"}, threads=True)
    assert cli.run_cli(parser, ["--threads", "3"], lambda args: seen.append("command") or 0) == 0
    assert seen == [("threads", 3), "command"]
    seen.clear()
    assert cli.run_cli(parser, [], lambda args: 0) == 0 and seen == [("threads", None)]


def test_apply_threads_sets_every_library_once(monkeypatch):
    import cv2
    import torch

    from baselines.interface import thread_budget

    for name in THREAD_VARIABLES:  # restored by monkeypatch afterwards
        monkeypatch.setenv(name, "7")
    before = (cv2.getNumThreads(), torch.get_num_threads())
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn/scipy stacks, not always
        threadpool_info = list
    blas_before = {p["prefix"]: p["num_threads"] for p in threadpool_info()}
    try:
        apply_threads(None)
        assert all(os.environ[n] == "7" for n in THREAD_VARIABLES)
        assert (cv2.getNumThreads(), torch.get_num_threads()) == before
        apply_threads(1)
        assert all(os.environ[n] == "1" for n in THREAD_VARIABLES)
        assert cv2.getNumThreads() == 1 and torch.get_num_threads() == 1 and thread_budget() == 1
    finally:
        cv2.setNumThreads(before[0])
        torch.set_num_threads(before[1])
        if blas_before:  # the BLAS threads too, or the rest of the test session runs on one thread
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=blas_before)


def test_threads_reaches_a_torch_loaded_later(tmp_path):
    """A torch imported after ``--threads`` was applied starts with that many threads."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env["PYTHONPATH"] = str(REPO)
    code = ("import evaluation; from dbm.cli import apply_threads; apply_threads(1); "
            "import torch; print(torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "1"), done.stderr
