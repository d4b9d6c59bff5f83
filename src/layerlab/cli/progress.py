"""Training progress on the terminal: the library only logs, the command line draws (through
:class:`layerlab.callbacks.ProgressBar`, which a notebook uses the same way)."""

from __future__ import annotations


class RichProgress:
    """A progress bar per epoch (loss, accuracy, samples/s, ETA) and a line per finished epoch.

    ``callbacks`` is the :class:`layerlab.callbacks.ProgressBar` to hand to ``api.train``/``api.resume``
    (as ``progress=``). The bar goes to stderr and only on a terminal; the epoch lines go to stdout
    unless ``quiet``, or to stderr with ``to_stderr`` (``--json`` keeps stdout for the JSON alone).
    ``out`` is the console of the epoch lines, for the command's own messages.
    """

    def __init__(self, quiet: bool = False, to_stderr: bool = False):
        from rich.console import Console

        from ..callbacks import ProgressBar

        self.out = Console(highlight=False, stderr=to_stderr)
        self.err = Console(stderr=True)
        self.quiet = quiet
        self.callbacks = ProgressBar(0 if quiet else 1, console=self.out, bar_console=self.err)
