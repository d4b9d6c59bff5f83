"""Errors the user can fix. The CLI prints their message as one sentence and exits with code 2."""


class LayerlabError(Exception):
    """Bad input: a missing or corrupt file, an unknown name, a wrong shape, a diverged run."""


class DataError(LayerlabError):
    """A dataset could not be found, read or understood."""


class ConfigError(LayerlabError):
    """A configuration value, flag or preset is wrong."""


class TrainingError(LayerlabError):
    """Training could not go on (for example the loss became NaN)."""


class RunError(LayerlabError):
    """A run directory is missing, incomplete or not one layerlab can read."""
