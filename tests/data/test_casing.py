"""truecase stage: pure casing rules without a model, one test on the packaged truecase model."""

from __future__ import annotations

import pandas as pd
import pytest

from aligntax.config import ConfigError, from_dict
from aligntax.data.casing import (
    TruecaseConfig,
    apply_token_case,
    case_column,
    case_text,
    load_caser,
    protected_spans,
    sentence_caser,
    skip_reason,
    truecase_frame,
)


def test_skip_reasons_cover_bad_input():
    assert skip_reason(None, True) == "empty"
    assert skip_reason("   ", True) == "empty"
    assert skip_reason("1234 !!! :)", True) == "no_letters"
    assert skip_reason("\U0001F600\U0001F602", True) == "no_letters"
    assert skip_reason("I HATE MONDAYS", True) == "all_caps"
    assert skip_reason("I went to Boston", True) == "already_cased"
    assert skip_reason("I went to Boston", False) is None
    assert skip_reason("i went to boston", True) is None
    assert skip_reason("東京に行った", True) == "no_cased_letters"


def test_apply_token_case_keeps_characters_and_protected_spans():
    text = "i saw bob at  www.bob.com ."
    tokens = ["i", "saw", "bob", "at", "www.bob.com", "."]
    cased = ["I", "saw", "Bob", "at", "Www.Bob.Com", "."]
    out, changed = apply_token_case(text, tokens, cased, protected_spans(text))
    assert out == "I saw Bob at  www.bob.com ."
    assert changed == 2
    assert out.lower() == text.lower() and len(out) == len(text)


def test_apply_token_case_ignores_tokens_that_do_not_match():
    out, changed = apply_token_case("hello world", ["hello", "there"], ["Hello", "Somewhere"])
    assert (out, changed) == ("Hello world", 1)


def test_sentence_caser_and_case_text_per_sentence():
    out, tokens, changed = case_text("i'm late. my boss saw /r/tifu! then i left", sentence_caser)
    assert out == "I'm late. My boss saw /r/tifu! Then I left"
    assert tokens > 0 and changed == 4


def test_case_column_counts_reasons_and_passes_bad_values_through():
    texts = ["i lost it.", "", None, "OMG NO", "123", "Already Cased"]
    out, counts = case_column(texts, sentence_caser, only_lowercase=True)
    assert out == ["I lost it.", "", None, "OMG NO", "123", "Already Cased"]
    assert counts["cased"] == 1
    assert counts["skipped"] == {"all_caps": 1, "already_cased": 1, "empty": 2, "no_letters": 1}


def test_truecase_frame_disabled_copies_and_config_rejects_bad_columns():
    df = pd.DataFrame({"id": ["a"], "post": ["i went home."], "summary": ["i left."],
                       "subreddit": ["tifu"], "title": ["t"]})
    out, metrics = truecase_frame(df, TruecaseConfig(enabled=False), None)
    assert out.equals(df) and metrics["summary"]["cased"] == 0
    out, metrics = truecase_frame(df, TruecaseConfig(backend="sentence", columns=["summary"]),
                                  load_caser(TruecaseConfig(backend="sentence")))
    assert list(out["summary"]) == ["I left."] and list(out["post"]) == ["i went home."]
    with pytest.raises(ConfigError, match="truecase.columns"):
        from_dict(TruecaseConfig, {"columns": []}, "truecase")


def test_packaged_truecase_model_restores_names():
    pytest.importorskip("truecase")
    caser = load_caser(TruecaseConfig())
    text = "i flew to new york with john last monday. see https://example.com/x for pics"
    out, _, changed = case_text(text, caser)
    assert out.startswith("I flew to New York with John last Monday.")
    assert "https://example.com/x" in out
    assert out.lower() == text.lower() and changed >= 5


def test_params_yaml_truecase_section_equals_the_dataclass_defaults():
    from pathlib import Path

    from aligntax.config import load_section, read_params

    params = read_params(Path(__file__).resolve().parents[2] / "params.yaml")
    assert load_section(params, "truecase", TruecaseConfig) == TruecaseConfig()


# Sentences from the bundled sample whose casing followed the process's string hash seed when the
# package's candidate sets were used in their own order ("manly"/"Manly", "unblock"/"UNBLOCK" ...).
TIE_TEXTS = [
    "did not mean a proud mexican show of manly facial hair.",
    "blocked my girlfriends toilet and tried to unblock with my bare hands.",
    "put the detergent and fabric softener in another and turned it on.",
    "i had a nosebleed and caused a biohazard incident on a cross-country flight.",
]
_CASE_IN_CHILD = (
    "import json, sys\n"
    "from aligntax.data.casing import TruecaseConfig, case_column, load_caser\n"
    "print(json.dumps(case_column(json.loads(sys.argv[1]), load_caser(TruecaseConfig()), True)[0]))\n"
)


def test_truecase_is_the_same_in_every_process_whatever_the_hash_seed():
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("truecase")
    root = Path(__file__).resolve().parents[2]
    outs = set()
    for seed in ("1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        done = subprocess.run([sys.executable, "-c", _CASE_IN_CHILD, json.dumps(TIE_TEXTS)], env=env,
                              capture_output=True, text=True, check=True, cwd=root)
        outs.add(done.stdout)
    assert len(outs) == 1
    cased = json.loads(outs.pop())
    assert [c.lower() for c in cased] == [t.lower() for t in TIE_TEXTS]
    assert "manly" in cased[0] and "unblock" in cased[1]  # ties go to the lower-case spelling


def test_fixed_order_puts_lower_case_first():
    from aligntax.data.casing import fixed_order

    assert fixed_order({"Manly", "manly", "MANLY"}) == ("manly", "MANLY", "Manly")
