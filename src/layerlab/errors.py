"""Errors the user can fix. The CLI prints their message as one sentence and exits with code 2."""


class LayerlabError(Exception):
    """Bad input: a missing or corrupt file, an unknown name, a wrong shape, a diverged run."""


class DataError(LayerlabError):
    """A dataset could not be found, read or understood."""


class ConfigError(LayerlabError):
    """A configuration value, flag or preset is wrong."""


class TrainingError(LayerlabError):
    """Training could not go on (for example the loss became NaN)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM (its ``__cause__``) after its run directory was made,
    which records it as ``interrupted``: ``run_dir`` names the run, ``note`` says what was kept
    (``the checkpoint of epoch 3 in runs/x``), ``has_checkpoint`` whether ``train --resume``
    continues it (else it trains again from its seed). A KeyboardInterrupt still, so code that
    stops on Ctrl-C stops on it."""

    def __init__(self, run_dir: str, note: str, has_checkpoint: bool = True):
        super().__init__(note)
        self.run_dir, self.note, self.has_checkpoint = str(run_dir), note, has_checkpoint


class RunError(LayerlabError):
    """A run directory is missing, incomplete or not one layerlab can read."""
