"""What every stage script shares: a --help that shows defaults, quiet logs, one clear error line.

Stage scripts import only this module at the top and their heavy libraries (torch, transformers,
pandas) inside ``main()`` after ``parse_args()``, so ``--help`` answers in about a second.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable

# ConfigError and SchemaError are ValueErrors: naming ValueError keeps pandas/yaml out of --help.
EXPECTED = (FileNotFoundError, ValueError, RuntimeError)

# The one place known library notices are silenced: logger name -> messages (regex, searched).
# Each is harmless for this pipeline (why, beside it); anything else a library warns about shows.
NOTICES: dict[str, tuple[str, ...]] = {
    # evaluate passes its own GenerationConfig without bos_token_id; the model's id filling it in is intended
    "transformers.generation.utils": (r"`generation_config` default values have been modified",),
    # aligntax passes dtype= and legacy=True (models.py); these stay for libraries (trl, peft, sentence-
    # transformers) that still read config.torch_dtype, and hub Llama tokenizers loaded with the default
    "transformers.modeling_utils": (r"`torch_dtype` is deprecated",),
    "transformers.configuration_utils": (r"`torch_dtype` is deprecated",),
    "transformers.models.llama.tokenization_llama_fast": (r"default legacy behaviour",),
    "transformers.models.llama.tokenization_llama": (r"default legacy behaviour",),
}
# Python warnings (category, message regex) of the same kind.
WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, r".*`torch_dtype` is deprecated"),
)
# Loggers whose INFO lines are the pipeline's own progress; every other library logs WARNING and up.
OWN_LOGGERS = ("aligntax", "stages", "__main__")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each argument's default and keeps the stage docstring's line breaks."""


def parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with the `--params` option every stage takes; --help lists defaults."""
    p = argparse.ArgumentParser(description=description, formatter_class=_Formatter)
    p.add_argument("--params", default="params.yaml", help="params file")
    return p


class KnownNotices(logging.Filter):
    """Drops the records of one logger whose message matches one of ``patterns``."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.patterns = [re.compile(p) for p in patterns]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.search(message) for p in self.patterns)


def quiet_logs() -> None:
    """Own loggers at INFO, libraries at WARNING, the known notices above silenced.

    The filters sit on the emitting loggers themselves (created here if the library is not
    imported yet), so they hold however a library routes its records to handlers.
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    for name, patterns in NOTICES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, KnownNotices) for f in logger.filters):
            logger.addFilter(KnownNotices(patterns))
    for category, message in WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


FIXES = {
    errno.ENOSPC: "the disk is full: free space (or point TMPDIR / the output elsewhere) and re-run",
    errno.EDQUOT: "the disk quota is used up: free space and re-run",
    errno.EACCES: "no permission: check the owner and mode of the file and its folder",
    errno.EPERM: "not permitted: check the owner and mode of the file and its folder",
    errno.EROFS: "the filesystem is read-only: write the outputs to a writable folder",
    errno.ENOENT: "it does not exist: create it (`dvc repro`) or fix the path",
    errno.EFBIG: "the file outgrew the size limit of this process or filesystem (ulimit -f); raise it",
}
"""What to do about an OSError, by errno (the message always names the file)."""


def message(err: BaseException) -> str:
    """The one line an error ends a stage with: an OSError names its file, errno and the fix."""
    if isinstance(err, MemoryError):
        return "out of memory; lower the batch sizes or counts in params.yaml (check-params bounds them)"
    if isinstance(err, OSError) and err.errno is not None and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        fix = FIXES.get(err.errno, "nothing was half-written; fix the cause and re-run")
        text = f"{where}{err.strerror} ({errno.errorcode.get(err.errno, err.errno)}); {fix}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def run(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; an expected error ends it with one message and exit code 1.

    Expected: a bad value or input (ValueError, RuntimeError), any OSError (a missing file, a full
    disk, no permission: the message names the file) and running out of memory. stdin is closed
    for the run, so no library prompt ("run custom code? [y/N]") can wait for an answer.
    Set ALIGNTAX_DEBUG=1 to see the full traceback instead.
    """
    quiet_logs()
    stdin, sys.stdin = sys.stdin, open(os.devnull)  # noqa: SIM115 - closed below
    try:
        main()
    except (*EXPECTED, OSError, MemoryError) as err:
        if os.environ.get("ALIGNTAX_DEBUG"):
            raise
        print(f"error: {message(err)}", file=sys.stderr)
        sys.exit(1)
    finally:
        sys.stdin.close()
        sys.stdin = stdin
