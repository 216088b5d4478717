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
    out = subprocess.run([sys.executable, "tests/stage_help.py", "--limit", "30", *LIGHT], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == LIGHT and all(r[2] == "-" for r in rows)


def test_help_lists_defaults():
    out = subprocess.run([sys.executable, "-m", "stages.toxify", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    flat = " ".join(out.stdout.split())
    assert "(default: params.yaml)" in flat and "(default: data/augment/train/toxic.parquet)" in flat
    assert "Resumable, and split across processes" in out.stdout  # the docstring keeps its line breaks


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


GENERATE = """
import sys
from aligntax import cli
if sys.argv[-1] == "quiet":
    cli.quiet_logs()
import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, num_key_value_heads=2, bos_token_id=1, eos_token_id=2))
model.generation_config.pad_token_id = 2
ids = torch.tensor([[1, 5, 6, 7]])
# what evaluate does: its own GenerationConfig without bos_token_id
model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
               generation_config=GenerationConfig(max_new_tokens=2, do_sample=False, pad_token_id=2, eos_token_id=[2]))
_ = model.config.torch_dtype  # what some libraries still read
"""


def test_real_transformers_notices_are_silenced():
    loud = subprocess.run([sys.executable, "-c", GENERATE, "loud"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    quiet = subprocess.run([sys.executable, "-c", GENERATE, "quiet"], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert loud.returncode == 0 and quiet.returncode == 0, loud.stderr + quiet.stderr
    for notice in ("`generation_config` default values have been modified", "`torch_dtype` is deprecated"):
        assert notice in loud.stderr  # the library still says it (else the filter is stale: drop it)
        assert notice not in quiet.stderr
