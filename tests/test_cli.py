"""aligntax.cli: --help with defaults and without heavy imports, quiet logs, one-line errors."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# stage scripts whose imports and help texts this module's rules cover
LIGHT = ["download", "prepare_model", "fit_scorers", "validate_scorers", "backtranslate", "toxify", "entity_perturb",
         "summarize"]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("stage", LIGHT)
def test_stage_module_imports_no_heavy_library(stage):
    out = _python(f"import sys, stages.{stage}; print(sorted(m for m in ('torch', 'transformers', 'pandas', 'spacy') "
                  "if m in sys.modules))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_every_argument_of_the_light_stages_has_help_and_default():
    out = subprocess.run([sys.executable, "bench/stage_help.py", "--limit", "30", *LIGHT], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == LIGHT and all(r[2] == "-" for r in rows)


def test_help_lists_defaults():
    out = subprocess.run([sys.executable, "-m", "stages.toxify", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    flat = " ".join(out.stdout.split())
    assert "(default: params.yaml)" in flat and "(default: data/augment/toxic.parquet)" in flat
    assert "Resumable and shardable" in out.stdout  # the docstring keeps its line breaks


def test_known_notices_are_silenced_and_the_rest_shows():
    out = _python(
        "import logging\n"
        "from aligntax import cli\n"
        "cli.quiet_logs()\n"
        "gen = logging.getLogger('transformers.generation.utils')\n"
        "gen.warning('`generation_config` default values have been modified to match model-specific defaults')\n"
        "gen.warning('something new the user must see')\n"
        "logging.getLogger('transformers.configuration_utils').warning('`torch_dtype` is deprecated! Use `dtype`')\n"
        "logging.getLogger('absl').info('Using default tokenizer.')\n"
        "logging.getLogger('aligntax.evaluate').info('progress of our own')\n"
        "import warnings; warnings.warn('`torch_dtype` is deprecated', FutureWarning)\n"
        "warnings.warn('another future change', FutureWarning)\n"
    )
    assert out.returncode == 0, out.stderr
    err = out.stderr
    assert "something new the user must see" in err and "progress of our own" in err and "another future change" in err
    for hidden in ("default values have been modified", "torch_dtype", "Using default tokenizer"):
        assert hidden not in err


def test_expected_error_is_one_line():
    out = _python(
        "from aligntax import cli\n"
        "from aligntax.config import ConfigError\n"
        "def main():\n"
        "    raise ConfigError(\"params.yaml: bad value for 'seed'; allowed: an integer >= 0\")\n"
        "cli.run(main)\n"
    )
    assert out.returncode == 1
    assert out.stderr.strip() == "error: params.yaml: bad value for 'seed'; allowed: an integer >= 0"
