"""The evaluate stage end to end on a tiny model with fake scorers (the real ones are tested in tests/scoring)."""

import json
import sys

import pandas as pd
import pytest
import yaml
from launch_stage import fake_scorers  # the constant test doubles, shared with the multi-process tests

from aligntax.config import ConfigError, load_section
from aligntax.evaluate import run
from aligntax.evaluate.run import EvaluateConfig, check_method, method_decoding, select_posts
from aligntax.generation import Decoding
from aligntax.io import read_parquet, write_parquet
from aligntax.models import load_tokenizer
from aligntax.schema import GENERATIONS, RAW, SCORES
from stages import evaluate as stage


@pytest.fixture
def eval_file(tmp_path):
    rows = [
        {"id": f"p{i}", "post": text, "summary": "got lost on the way", "subreddit": "tifu", "title": None}
        for i, text in enumerate([
            "we drove to new york with john and mary and got lost.",
            "i dropped my phone in the toilet at work today.",
            "my cat knocked over a glass of water on my laptop.",
            "i forgot my keys and got locked out in the rain.",
        ])
    ]
    path = tmp_path / "eval.parquet"
    write_parquet(pd.DataFrame(rows), path, RAW)
    return path


def _params(tmp_path, **evaluate):
    params = {"seed": 0, "model": {"prompt_template": "post: {post} tl;dr:"},
              "evaluate": {"n_posts": 3, "generate": {"max_new_tokens": 4, "batch_size": 2}, **evaluate}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _run(monkeypatch, tmp_path, params, model_dir, eval_file, method="sft"):
    out = tmp_path / "out"
    argv = ["evaluate", "--params", str(params), "--method", method, "--model", str(model_dir), "--eval", str(eval_file),
            "--generations", str(out / "gen.parquet"), "--scores", str(out / "scores.parquet"),
            "--metrics", str(out / "m.json")]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(run, "load_scorers", fake_scorers)
    stage.main()
    return out


def test_evaluate_stage_writes_generations_scores_and_metrics(monkeypatch, tmp_path, tiny_llama_dir, eval_file):
    out = _run(monkeypatch, tmp_path, _params(tmp_path), tiny_llama_dir, eval_file)
    gens = read_parquet(out / "gen.parquet", GENERATIONS)
    scores = read_parquet(out / "scores.parquet", SCORES)
    assert gens["post_id"].tolist() == ["p0", "p1", "p2"] and (gens["method"] == "sft").all()
    assert scores["n_tokens"].between(0, 4).all()
    m = json.loads((out / "m.json").read_text())
    assert m["method"] == "sft" and m["n"] == 3
    assert set(m["seconds"]) >= {"total", "imports", "load", "generate", "generate_prefill", "score"}
    assert m["seconds"]["total"] >= m["seconds"]["generate"] >= m["seconds"]["generate_prefill"]
    assert m["shared_bottom"]["split"] is None  # a full model: nothing shared, nothing stored
    assert m["rows"] == {"read": 4, "kept": 3, "dropped": {"beyond_n_posts": 1}}
    empty = scores["empty"].to_numpy()
    assert m["toxicity"]["mean"] == pytest.approx(0.25 * (~empty).mean())  # empty outputs score 0 by rule
    assert m["faithfulness"]["mean"] == pytest.approx(0.5 * (~empty).mean())
    first = results(out / "m.json"), (out / "gen.parquet").read_bytes()
    _run(monkeypatch, tmp_path, _params(tmp_path), tiny_llama_dir, eval_file)
    assert (results(out / "m.json"), (out / "gen.parquet").read_bytes()) == first  # deterministic


def results(path):
    """A metrics JSON without its run facts (seconds, store traffic), which differ between runs."""
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in ("seconds", "shared_bottom")}


def test_missing_model_fails_before_anything_is_written(monkeypatch, tmp_path, eval_file):
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        _run(monkeypatch, tmp_path, _params(tmp_path), tmp_path / "models" / "nope", eval_file)
    assert not (tmp_path / "out").exists()


def test_wrong_eval_schema_is_one_clear_error(monkeypatch, tmp_path, tiny_llama_dir):
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"id": ["a"], "text": ["x"]}).to_parquet(bad)
    with pytest.raises(ValueError, match="column 'post' is missing"):
        _run(monkeypatch, tmp_path, _params(tmp_path), tiny_llama_dir, bad)
    assert not (tmp_path / "out").exists()


def test_bad_params_and_method_names(tmp_path):
    with pytest.raises(ConfigError, match="evaluate.generate.batch_size"):
        load_section({"evaluate": {"generate": {"batch_size": 0}}}, "evaluate", EvaluateConfig)
    with pytest.raises(ConfigError, match="unknown key 'evaluate.n_post'"):
        load_section({"evaluate": {"n_post": 3}}, "evaluate", EvaluateConfig)
    with pytest.raises(ValueError, match="--method"):
        check_method("../sft")


def test_select_posts_all_when_zero():
    df = pd.DataFrame({"id": ["a", "b"]})
    kept, rows = select_posts(df, 0)
    assert len(kept) == 2 and rows["dropped"]["beyond_n_posts"] == 0


@pytest.mark.parametrize("method", ["base", "sft", "contrastive", "inlp"])
def test_weight_methods_decode_plainly(method):
    assert method_decoding(method, {}) == Decoding()


def test_evaluate_stage_scores_preferences_on_every_post_with_a_group(monkeypatch, tmp_path, tiny_llama_dir, eval_file):
    from aligntax.evaluate.preference import LIKELIHOODS, PREFERENCES
    from aligntax.schema import GROUPS

    def row(pid, role, kind, text):
        return {"post_id": pid, "role": role, "kind": kind, "text": text, "entity_spans": [], "toxicity": 0.1}

    groups = pd.DataFrame([
        row("p0", "positive", "reference", "got lost on the way"),
        row("p0", "positive", "backtranslation", "we got lost on the way"),
        row("p0", "negative", "swap_ent", "got lost on the way to boston"),
        row("p3", "negative", "toxic_lexicon", "got lost on the damn way"),  # beyond n_posts: still scored
        row("p1", "positive", "backtranslation", "lost on the way"),  # no negative: skipped, counted
    ])
    gfile = tmp_path / "groups.parquet"
    write_parquet(groups, gfile, GROUPS)
    out = tmp_path / "out"
    argv = ["evaluate", "--params", str(_params(tmp_path)), "--method", "sft", "--model", str(tiny_llama_dir),
            "--eval", str(eval_file), "--groups", str(gfile), "--generations", str(out / "gen.parquet"),
            "--scores", str(out / "scores.parquet"), "--preferences", str(out / "pref.parquet"),
            "--likelihoods", str(out / "lik.parquet"), "--metrics", str(out / "m.json")]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(run, "load_scorers", fake_scorers)
    stage.main()
    pairs = read_parquet(out / "pref.parquet", PREFERENCES)
    assert sorted(zip(pairs["post_id"], pairs["axis"], strict=True)) == [
        ("p0", "entity"), ("p0", "paraphrase"), ("p3", "toxic")]
    variants = read_parquet(out / "lik.parquet", LIKELIHOODS)
    assert sorted(zip(variants["post_id"], variants["kind"], variants["role"], strict=True)) == [
        ("p0", "backtranslation", "positive"), ("p0", "reference", "positive"), ("p0", "swap_ent", "negative"),
        ("p3", "reference", "positive"), ("p3", "toxic_lexicon", "negative")]
    lp = variants.set_index(["post_id", "kind"])["logprob_sum"]
    ref = pairs.set_index(["post_id", "axis"])
    assert ref.loc[("p0", "entity"), "margin_sum"] == pytest.approx(lp[("p0", "reference")] - lp[("p0", "swap_ent")])
    m = json.loads((out / "m.json").read_text())
    per_token = variants.assign(x=variants["logprob_sum"] / variants["n_tokens"]).set_index(["post_id", "kind"])["x"]
    assert m["likelihood"]["posts"] == 2
    assert m["likelihood"]["reference"] == pytest.approx((per_token[("p0", "reference")] + per_token[("p3", "reference")]) / 2)
    assert m["likelihood"]["positives"] == pytest.approx(
        ((per_token[("p0", "reference")] + per_token[("p0", "backtranslation")]) / 2 + per_token[("p3", "reference")]) / 2)
    pref = m["preference"]
    assert pref["applicable"] and pref["rows"]["posts_without_negative"] == 1 and pref["rows"]["posts_scored"] == 2
    assert pref["axes"]["entity"]["pairs"] == 1 and pref["axes"]["toxic"]["posts"] == 1
    assert pref["axes"]["entity"]["accuracy"] == float(pairs.loc[pairs["axis"] == "entity", "preferred"].iloc[0])


def test_a_huge_post_is_cut_to_the_token_budget_in_generation_and_preferences(monkeypatch, tmp_path, tiny_llama_dir):
    import time

    from aligntax.schema import GROUPS

    huge = "we drove to new york with john and mary and got lost. " * 3800  # > 200k characters
    rows = [{"id": f"p{i}", "post": text, "summary": "got lost on the way", "subreddit": "tifu", "title": None}
            for i, text in enumerate([huge, "my cat knocked over a glass of water.", huge])]
    efile, gfile, out = tmp_path / "eval.parquet", tmp_path / "groups.parquet", tmp_path / "out"
    write_parquet(pd.DataFrame(rows), efile, RAW)
    write_parquet(pd.DataFrame([
        {"post_id": pid, "role": "negative", "kind": "swap_ent", "text": "got lost in boston", "entity_spans": [],
         "toxicity": 0.1} for pid in ("p0", "p1")]), gfile, GROUPS)
    argv = ["evaluate", "--params", str(_params(tmp_path, n_posts=0)), "--method", "sft", "--model",
            str(tiny_llama_dir), "--eval", str(efile), "--groups", str(gfile), "--generations", str(out / "gen.parquet"),
            "--scores", str(out / "scores.parquet"), "--preferences", str(out / "pref.parquet"),
            "--metrics", str(out / "m.json")]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(run, "load_scorers", fake_scorers)
    start = time.perf_counter()
    stage.main()
    assert time.perf_counter() - start < 60
    m = json.loads((out / "m.json").read_text())
    assert len(huge) > 200_000 and m["prompts_truncated"] == 2 and m["preference"]["prompts_truncated"] == 1
    assert read_parquet(out / "gen.parquet", GENERATIONS)["post"].tolist()[0] == huge  # the output keeps the post


def test_prompts_are_cut_to_the_budget_and_encoded_once_behind_the_prefix(tiny_llama_dir):
    tok = load_tokenizer(tiny_llama_dir)
    evals = pd.DataFrame({"id": ["a", "b"], "post": ["a short post.", "word " * 500]})
    prompts = run.encode_prompts(tok, "post: {post} tl;dr:", "be kind: ", evals, 16)
    assert prompts.truncated == {"a": False, "b": True}
    assert prompts.ids["a"] == tok("be kind: post: a short post. tl;dr:")["input_ids"]
    tail = len(tok("be kind: post:  tl;dr:")["input_ids"])
    assert tail + 12 <= len(prompts.ids["b"]) <= tail + 17 < len(tok("word " * 500)["input_ids"])
    with pytest.raises(ConfigError, match="evaluate.max_prompt_tokens"):
        load_section({"evaluate": {"max_prompt_tokens": 15}}, "evaluate", EvaluateConfig)
