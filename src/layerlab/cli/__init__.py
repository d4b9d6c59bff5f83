"""The ``layerlab`` command line: one module per command group, each parsing arguments, calling
:mod:`layerlab.api` (or :mod:`layerlab.inspect`) and rendering what it returns, with no logic of its own.

- :mod:`.run`: ``train``, ``evaluate``, ``predict``, ``generate``
- :mod:`.catalog`: ``data list``, ``models``
- :mod:`.inspect`: ``inspect *``, ``compare-cells``, ``report``
- :mod:`.tune`: ``tune`` (a hyperparameter search on Optuna)
- :mod:`.explore`: ``explore`` (a local web app over runs)

Bad input, a file operation the system refuses (a full disk, a read-only folder, a name too long)
and memory it does not have exit with code 2 and one sentence on stderr; Ctrl-C exits with 130 and SIGTERM (a
scheduler's or ``kill``'s stop) with 143, each handled the same way: the run records ``interrupted``,
keeps its last checkpoint, and the message names the run directory and the command that resumes it.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import signal
import sys

from ..errors import LayerlabError, TrainingInterrupted
from . import catalog, claims, explore, export, inspect, run, tune

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process it ended


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so it unwinds exactly as Ctrl-C does."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated()


def interrupt_hint(e: KeyboardInterrupt) -> str:
    """What follows "interrupted" on stderr: the checkpoint kept and the command that continues the
    run (:class:`~layerlab.errors.TrainingInterrupted`); empty when no run directory was made yet
    (nothing to resume)."""
    if not isinstance(e, TrainingInterrupted):
        return ""
    command = f"layerlab train --resume {shlex.quote(e.run_dir)}"
    if e.has_checkpoint:
        return f"; {e.note}; resume with `{command}`"
    # api.resume trains such a run again from its seed, exactly as `train` would have
    return f"; {e.note}; `{command}` starts it again from its seed"


def os_error_sentence(e: OSError) -> str:
    """An operating-system error as one sentence: the path (or paths) it names and the system's
    reason, ``/runs/x/report.html: permission denied``."""
    reason = e.strerror or str(e) or type(e).__name__
    reason = reason[:1].lower() + reason[1:]
    paths = [os.fsdecode(p) for p in (e.filename, e.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


def is_out_of_memory(e: BaseException) -> bool:
    """Python's MemoryError, torch's CPU allocator refusing (a RuntimeError) or CUDA's OutOfMemoryError."""
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(e)


def memory_sentence(e: BaseException) -> str:
    """Out of memory as one sentence: how much was asked for, when the error says, and what needs less."""
    m = re.search(r"allocate (\d+ bytes|[\d.]+ [KMGT]iB)", str(e))
    asked = f" ({m.group(1)} asked for at once)" if m else ""
    return (
        f"out of memory{asked}; a smaller --batch-size or --eval-batch-size, model, sequence length or count needs less"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``layerlab`` parser with every sub-command; each sets ``func`` to the function that runs it."""
    p = argparse.ArgumentParser(
        prog="layerlab",
        description="Build, train, evaluate, predict with and look inside convolutional and recurrent neural networks.",
    )
    p.add_argument("--version", action="version", version=f"layerlab {__import__('layerlab').__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (run, catalog, inspect, export, claims, tune, explore):
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one ``layerlab`` command; returns the exit code (0, 2 for bad input, 130 when interrupted)."""
    try:
        args = build_parser().parse_args(argv)
    except LayerlabError as e:  # a checked option (cli.options) read with a value it cannot take
        print(f"layerlab: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return args.func(args) or 0
    except LayerlabError as e:
        print(f"layerlab: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated) or isinstance(e.__cause__, Terminated)
        what = "terminated (SIGTERM)" if terminated else "interrupted"
        print(f"layerlab: {what}{interrupt_hint(e)}", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`layerlab ... | head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit is quiet too
        return 0
    except OSError as e:  # the system refused a file operation: a full disk, a read-only or missing folder
        print(f"layerlab: error: {os_error_sentence(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (MemoryError, RuntimeError) as e:  # sizes beyond this machine's memory (an absurd count or size)
        if not is_out_of_memory(e):
            raise
        print(f"layerlab: error: {memory_sentence(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        signal.signal(signal.SIGTERM, previous)
