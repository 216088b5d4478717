"""What every stage script shares: logging set-up and one clear error line instead of a traceback."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from aligntax.config import ConfigError
from aligntax.schema import SchemaError

EXPECTED = (ConfigError, SchemaError, FileNotFoundError, ValueError, RuntimeError)


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the `--params` option every stage takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return p


def run(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; an expected error ends it with one message and exit code 1.

    Set ALIGNTAX_DEBUG=1 to see the full traceback instead.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        main()
    except EXPECTED as err:
        if os.environ.get("ALIGNTAX_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
