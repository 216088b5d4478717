"""Hub-shaped stand-ins: tiny random-weight models and TL;DR datasets in the Hugging Face cache layout.

    python tests/paper/standins.py <HF_HOME>      # builds every stand-in (offline, ~30 s)

Each hub id the paper profile (configs/profiles/paper.yaml) names gets a tiny model of the same
architecture, tokenizer class, labels and special-token set as the real repository, written where
the libraries look for it with the hub offline (``env(hf_home)``: HF_HUB_OFFLINE=1):

- models: ``<HF_HOME>/hub/models--<org>--<name>/{refs/main, snapshots/<rev>/...}``, so
  ``from_pretrained("<hub id>")`` resolves it through huggingface_hub's cache, not a folder path;
- datasets: the prepared cache ``<HF_HOME>/datasets/<org>___<name>/default/0.0.0/<hash>/`` (what
  ``datasets.load_dataset("<id>")`` reads offline) plus the repository's parquet files under
  ``<HF_HOME>/hub/datasets--<org>--<name>``;
- the flair tagger: ``<FLAIR_CACHE_ROOT>/models/<name>/models--flair--<name>/...`` (flair's own
  hub cache; FLAIR_CACHE_ROOT = <HF_HOME>/flair).

Weights are random (seeded) and tokenizers are trained on the committed samples, with two
exceptions that keep a pipeline on them from emptying itself: the toxicity classifier's biases put
every score near 0.45 (between toxify's 0.4 keep limit and its 0.5 reference limit), and the flair
tagger tags a fixed word list (a random one tags most words, so every paraphrase would bring a
"new entity"). The real repositories' quirks are kept on purpose (Llama-2: no pad token, a huge
model_max_length, a sampling generation_config, sharded safetensors; gpt-neo: pytorch_model.bin only).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "tldr_sample.jsonl"
LABELLED = (ROOT / "data" / "sample" / "faithfulness_sample.jsonl", ROOT / "data" / "sample" / "toxicity_sample.jsonl")

LLAMA = "meta-llama/Llama-2-7b-hf"
GPT2 = "gpt2"
GPT_NEO = "EleutherAI/gpt-neo-2.7B"
TOXIC_BERT = "unitary/toxic-bert"
NLI = "MoritzLaurer/DeBERTa-v3-base-mnli-fever-anli"
FLAIR_NER = "flair/ner-english-ontonotes-fast"
MARIAN = tuple(f"Helsinki-NLP/opus-mt-{a}-{b}" for p in ("de", "fr", "es") for a, b in (("en", p), (p, "en")))
DATASETS = ("dim/tldr_17_50k", "webis/tldr-17", "trl-lib/tldr", "CarperAI/openai_summarize_tldr")

TOXIC_LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
NLI_LABELS = ["entailment", "neutral", "contradiction"]  # the model card's id2label order
ONTONOTES = ["CARDINAL", "DATE", "EVENT", "FAC", "GPE", "LANGUAGE", "LAW", "LOC", "MONEY", "NORP", "ORDINAL",
             "ORG", "PERCENT", "PERSON", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART"]
TOXIC_SCORE = 0.45
"""Every toxic-bert stand-in score sits near this (its `toxic` bias), inside toxify's [0.4, 0.5] band."""
N_POSTS = 24
"""Rows of each stand-in TL;DR dataset (real posts of the committed sample)."""


def revision(repo_id: str) -> str:
    """The stand-in commit of ``repo_id`` (a stable 40-hex 'sha')."""
    return hashlib.sha1(repo_id.encode()).hexdigest()


def env(hf_home: str | Path) -> dict[str, str]:
    """Environment under which the libraries find the stand-ins in ``hf_home`` and never go online."""
    hf_home = str(Path(hf_home).resolve())
    return {"HF_HOME": hf_home, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "FLAIR_CACHE_ROOT": str(Path(hf_home) / "flair"), "TOKENIZERS_PARALLELISM": "false"}


def snapshot(cache: Path, repo_id: str, kind: str = "models") -> Path:
    """``<cache>/<kind>--<org>--<name>/snapshots/<rev>`` (created) with refs/main pointing to it."""
    repo = cache / f"{kind}--{repo_id.replace('/', '--')}"
    rev = revision(repo_id)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    path = repo / "snapshots" / rev
    path.mkdir(parents=True, exist_ok=True)
    return path


def corpus(n: int = 300) -> list[str]:
    """Text every stand-in tokenizer is trained on: posts and summaries of the committed TL;DR sample and
    cased news and comments of the labelled samples, so that any input the pipeline feeds them takes
    about as many tokens as with the real tokenizers (a tokenizer that spells cased text letter by letter
    makes every sequence several times longer)."""
    rows = pd.read_json(SAMPLE, lines=True).head(n)
    faith, tox = (pd.read_json(path, lines=True).head(n) for path in LABELLED)
    return [*rows["post"], *rows["summary"], *(s.capitalize() for s in rows["summary"]), *faith["document"],
            *faith["summary"], *tox["text"]]


# --- tokenizers ----------------------------------------------------------------------------------


def spm_model(path: Path, texts: list[str], vocab: int, **kwargs) -> Path:
    """A sentencepiece model trained on ``texts`` (as the hub's Llama, Marian and DeBERTa-v3 ship)."""
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "corpus.txt").write_text("\n".join(t.replace("\n", " ") for t in texts))
        spm.SentencePieceTrainer.train(input=f"{tmp}/corpus.txt", model_prefix=f"{tmp}/spm", vocab_size=vocab,
                                       character_coverage=1.0, minloglevel=2, **kwargs)
        os.replace(f"{tmp}/spm.model", path)
    return path


def byte_bpe(texts: list[str], vocab: int):
    """A GPT-2-style byte-level BPE (gpt2, gpt-neo): one special token, <|endoftext|>."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab, special_tokens=["<|endoftext|>"], show_progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        bpe.save_model(tmp)
        return GPT2TokenizerFast(vocab_file=f"{tmp}/vocab.json", merges_file=f"{tmp}/merges.txt",
                                 bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                 add_prefix_space=False)


def wordpiece_vocab(path: Path, texts: list[str], size: int = 3000) -> Path:
    """An uncased BERT vocab.txt: the special tokens, then the most frequent words and characters."""
    from collections import Counter

    words = Counter(w for t in texts for w in t.lower().split() if w.isalpha())
    chars = sorted({c for t in texts for c in t.lower() if not c.isspace()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars if c.isalpha())]
    vocab += [w for w, _ in words.most_common(size) if w not in vocab]
    path.write_text("\n".join(vocab) + "\n")
    return path


# --- models --------------------------------------------------------------------------------------


def build_llama(cache: Path, texts: list[str]) -> Path:
    """meta-llama/Llama-2-7b-hf: LlamaForCausalLM, sentencepiece LlamaTokenizer(Fast) without a pad token."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, LlamaTokenizer, LlamaTokenizerFast

    path = snapshot(cache, LLAMA)
    spm_model(path / "tokenizer.model", texts, 2000, model_type="bpe", byte_fallback=True, unk_id=0, bos_id=1,
              eos_id=2, pad_id=-1)
    slow = LlamaTokenizer(vocab_file=str(path / "tokenizer.model"), legacy=False, add_bos_token=True,
                          add_eos_token=False, model_max_length=int(1e30), clean_up_tokenization_spaces=False)
    slow.save_pretrained(path)
    LlamaTokenizerFast.from_pretrained(path, legacy=False).save_pretrained(path)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(slow), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                      bos_token_id=1, eos_token_id=2, pad_token_id=None, tie_word_embeddings=False,
                      rms_norm_eps=1e-5, torch_dtype="float16")
    model = LlamaForCausalLM(cfg)
    # Llama-2's own generation_config.json samples (T 0.6, top-p 0.9): greedy code must say do_sample=False.
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0, do_sample=True,
                                               temperature=0.6, top_p=0.9, max_length=4096)
    model.save_pretrained(path, safe_serialization=True, max_shard_size="100KB")  # sharded, with an index
    return path


def build_gpt2_family(cache: Path, texts: list[str], repo_id: str) -> Path:
    """gpt2 (GPT2LMHeadModel, tied head, n_positions 1024) or EleutherAI/gpt-neo-2.7B (GPTNeoForCausalLM,
    local/global attention, pytorch_model.bin only); GPT-2 byte-level BPE, no pad token."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoConfig, GPTNeoForCausalLM

    path = snapshot(cache, repo_id)
    tok = byte_bpe(texts, 2000)
    eos = tok.eos_token_id
    torch.manual_seed(1 if repo_id == GPT2 else 2)
    if repo_id == GPT2:
        tok.model_max_length = 1024
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=1024,
                                           bos_token_id=eos, eos_token_id=eos))
        model.save_pretrained(path, safe_serialization=True)
    else:
        tok.model_max_length = 2048
        model = GPTNeoForCausalLM(GPTNeoConfig(vocab_size=len(tok), hidden_size=32, num_layers=2, num_heads=4,
                                               attention_types=[[["global", "local"], 1]], window_size=256,
                                               max_position_embeddings=2048, bos_token_id=eos, eos_token_id=eos))
        model.save_pretrained(path, safe_serialization=False)
    tok.save_pretrained(path)
    return path


def build_marian(cache: Path, texts: list[str], repo_id: str) -> Path:
    """Helsinki-NLP/opus-mt-<src>-<tgt>: MarianMTModel, MarianTokenizer (source.spm, target.spm, vocab.json)."""
    import torch
    from transformers import GenerationConfig, MarianConfig, MarianMTModel, MarianTokenizer

    path = snapshot(cache, repo_id)
    pieces: dict[str, int] = {"</s>": 0, "<unk>": 1}
    for name, seed in (("source.spm", 0), ("target.spm", 1)):
        spm_model(path / name, texts[seed::2], 1000, model_type="unigram", unk_id=1, bos_id=-1, eos_id=0, pad_id=-1)
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(path / name))
        for i in range(sp.get_piece_size()):
            pieces.setdefault(sp.id_to_piece(i), len(pieces))
    pieces["<pad>"] = len(pieces)
    (path / "vocab.json").write_text(json.dumps(pieces, ensure_ascii=False))
    src, tgt = repo_id.rsplit("-", 2)[1:]
    tok = MarianTokenizer(source_spm=str(path / "source.spm"), target_spm=str(path / "target.spm"),
                          vocab=str(path / "vocab.json"), source_lang=src, target_lang=tgt, model_max_length=512)
    tok.save_pretrained(path)
    pad = pieces["<pad>"]
    torch.manual_seed(int(revision(repo_id)[:6], 16))
    cfg = MarianConfig(vocab_size=len(pieces), decoder_vocab_size=len(pieces), d_model=16, encoder_layers=1,
                       decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                       decoder_ffn_dim=32, max_position_embeddings=512, pad_token_id=pad, eos_token_id=0,
                       decoder_start_token_id=pad, forced_eos_token_id=0, scale_embedding=True,
                       share_encoder_decoder_embeddings=True)
    model = MarianMTModel(cfg)
    model.generation_config = GenerationConfig(bad_words_ids=[[pad]], bos_token_id=0, decoder_start_token_id=pad,
                                               eos_token_id=0, forced_eos_token_id=0, max_length=512, num_beams=4,
                                               pad_token_id=pad)
    model.save_pretrained(path, safe_serialization=True)
    return path


def build_toxic_bert(cache: Path, texts: list[str]) -> Path:
    """unitary/toxic-bert: BertForSequenceClassification, 6 Jigsaw labels, multi-label (sigmoid), uncased vocab."""
    import math

    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path = snapshot(cache, TOXIC_BERT)
    tok = BertTokenizer(vocab_file=str(wordpiece_vocab(path / "vocab.txt", texts)), do_lower_case=True,
                        model_max_length=512)
    tok.save_pretrained(path)
    torch.manual_seed(3)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, num_labels=len(TOXIC_LABELS),
                     id2label=dict(enumerate(TOXIC_LABELS)), label2id={n: i for i, n in enumerate(TOXIC_LABELS)},
                     problem_type="multi_label_classification")
    model = BertForSequenceClassification(cfg)
    with torch.no_grad():
        model.classifier.bias.fill_(math.log(TOXIC_SCORE / (1 - TOXIC_SCORE)))
        model.classifier.weight.mul_(0.1)  # scores vary by text, but only by ~0.01
    model.save_pretrained(path, safe_serialization=True)
    return path


def build_nli(cache: Path, texts: list[str]) -> Path:
    """MoritzLaurer/DeBERTa-v3-base-mnli-fever-anli: DebertaV2ForSequenceClassification, sentencepiece
    DebertaV2Tokenizer(Fast), labels entailment / neutral / contradiction."""
    import torch
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification, DebertaV2Tokenizer, DebertaV2TokenizerFast

    path = snapshot(cache, NLI)
    spm_model(path / "spm.model", texts, 2000, model_type="unigram", pad_id=0, pad_piece="[PAD]", bos_id=1,
              bos_piece="[CLS]", eos_id=2, eos_piece="[SEP]", unk_id=3, unk_piece="[UNK]",
              user_defined_symbols=["[MASK]"])
    slow = DebertaV2Tokenizer(vocab_file=str(path / "spm.model"), do_lower_case=False, model_max_length=512)
    slow.save_pretrained(path)
    DebertaV2TokenizerFast.from_pretrained(path).save_pretrained(path)
    torch.manual_seed(4)
    cfg = DebertaV2Config(vocab_size=len(slow), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=512, relative_attention=True,
                          position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True,
                          pos_att_type=["p2c", "c2p"], max_relative_positions=-1, position_biased_input=False,
                          type_vocab_size=0, pad_token_id=0, num_labels=3, id2label=dict(enumerate(NLI_LABELS)),
                          label2id={n: i for i, n in enumerate(NLI_LABELS)})
    DebertaV2ForSequenceClassification(cfg).save_pretrained(path, safe_serialization=True)
    return path


GAZETTEER = {
    "DATE": "monday tuesday wednesday thursday friday saturday sunday january february march april june july "
            "august september october november december today yesterday tomorrow weekend",
    "TIME": "tonight morning midnight",
    "CARDINAL": "one two three four five six seven eight nine ten 2 3 4 5 10 20 30 100",
    "PERSON": "john mary jim mike dan tina paul jake pete sarah",
    "GPE": "boston florida london texas canada california chicago",
    "ORG": "google reddit facebook walmart starbucks ikea",
    "PRODUCT": "iphone xbox playstation ipad",
}
"""The flair stand-in's entities: these words (lower-case or capitalised), each a one-word span of its type."""


def build_flair_ner(flair_root: Path) -> Path:
    """flair/ner-english-ontonotes-fast: a flair SequenceTagger (CRF, OntoNotes BIOES tags) saved as
    pytorch_model.bin in flair's hub cache. Its weights are set, not random: one-hot word embeddings
    mapped straight to tag scores make it tag the GAZETTEER words and nothing else (a random tagger
    tags most words, and every paraphrase would then bring a "new entity")."""
    import flair
    import torch
    from flair.data import Dictionary
    from flair.embeddings import OneHotEmbeddings
    from flair.models import SequenceTagger

    logging.getLogger("flair").setLevel(logging.WARNING)  # it logs the whole vocabulary
    name = FLAIR_NER.split("/", 1)[1]
    path = snapshot(flair_root / "models" / name, FLAIR_NER)
    tags = Dictionary(add_unk=False)
    tags.add_item("O")
    for label in ONTONOTES:
        for prefix in ("B", "I", "E", "S"):
            tags.add_item(f"{prefix}-{label}")
    tags.set_start_stop_tags()
    entity = {w: label for label, words in GAZETTEER.items() for word in words.split() for w in (word, word.capitalize())}
    words = Dictionary(add_unk=True)  # every other word is <unk>, tagged O (flair logs this vocabulary at each load)
    for w in entity:
        words.add_item(w)
    flair.device = torch.device("cpu")
    tagger = SequenceTagger(hidden_size=1, embeddings=OneHotEmbeddings(words, embedding_length=len(tags)),
                            tag_dictionary=tags, tag_type="ner", tag_format="BIOES", use_crf=True, use_rnn=False,
                            reproject_embeddings=False)
    with torch.no_grad():
        table = tagger.embeddings.embedding_layer.weight
        table.zero_()
        for i, w in enumerate(words.get_items()):
            table[i, tags.get_idx_for_item(f"S-{entity[w]}" if w in entity else "O")] = 10.0
        tagger.linear.weight.copy_(torch.eye(len(tags)))
        tagger.linear.bias.zero_()
        transitions = tagger.crf.transitions
        transitions.zero_()
        transitions[tags.get_idx_for_item("<START>"), :] = -10000
        transitions[:, tags.get_idx_for_item("<STOP>")] = -10000
    tagger.save(path / "pytorch_model.bin")
    return path


# --- datasets ------------------------------------------------------------------------------------


def tldr_layouts(rows: pd.DataFrame) -> dict[str, dict[str, pd.DataFrame]]:
    """Each known hub TL;DR dataset (its splits and columns) filled with the same real posts."""
    posts, summaries = rows["post"].tolist(), rows["summary"].tolist()
    ids = [str(i).removeprefix("task511-")[:8] for i in rows["id"]]
    subreddit = ["tifu"] * len(rows)
    titles = [f"tifu by {s.split()[0] if s.split() else 'posting'}" for s in summaries]
    bodies = [f"{p} tl;dr: {s}" for p, s in zip(posts, summaries, strict=True)]
    webis = pd.DataFrame({"author": ["someone"] * len(rows), "body": bodies, "normalizedBody": posts,
                          "subreddit": subreddit, "subreddit_id": ["t5_2to41"] * len(rows), "id": ids,
                          "content": posts, "summary": summaries})
    heads = [(f"SUBREDDIT: r/tifu\n\nTITLE: {t}\n\nPOST: {p}\n\nTL;DR:", f"SUBREDDIT: r/tifu\nTITLE: {t}\nPOST: {p}\nTL;DR: ")
             for t, p in zip(titles, posts, strict=True)]
    trl = pd.DataFrame({"prompt": [a for a, _ in heads], "completion": [f" {s}" for s in summaries]})
    carper = pd.DataFrame({"prompt": [b for _, b in heads], "label": summaries})
    half = len(rows) * 3 // 4
    return {
        "dim/tldr_17_50k": {"train": webis},
        "webis/tldr-17": {"train": webis},
        "trl-lib/tldr": {"train": trl.iloc[:half], "validation": trl.iloc[half:]},
        "CarperAI/openai_summarize_tldr": {"train": carper.iloc[:half], "valid": carper.iloc[half:]},
    }


def build_dataset(hf_home: Path, repo_id: str, splits: dict[str, pd.DataFrame]) -> Path:
    """The repo's parquet files in the hub cache, and the prepared arrow cache ``datasets`` reads offline
    (``<HF_HOME>/datasets/<org>___<name>/default/0.0.0/<hash>/``, named as datasets names it)."""
    import datasets
    from datasets.arrow_writer import ArrowWriter
    from datasets.naming import camelcase_to_snakecase

    snap = snapshot(hf_home / "hub", repo_id, "datasets")
    (snap / "data").mkdir(exist_ok=True)
    (snap / "README.md").write_text(f"# {repo_id} (aligntax stand-in)\n")
    org, name = repo_id.split("/")
    name = camelcase_to_snakecase(name)
    prepared = hf_home / "datasets" / f"{org}___{name}" / "default" / "0.0.0" / revision(repo_id)[:16]
    prepared.mkdir(parents=True, exist_ok=True)
    infos = datasets.SplitDict(dataset_name=name)
    features = None
    for split, frame in splits.items():
        frame = frame.reset_index(drop=True)
        frame.to_parquet(snap / "data" / f"{split}-00000-of-00001.parquet", index=False)
        table = datasets.Dataset.from_pandas(frame, preserve_index=False)
        features = table.features
        with ArrowWriter(features=features, path=str(prepared / f"{name}-{split}.arrow")) as w:
            w.write_table(table.data.table)
            n, size = w.finalize()
        infos.add(datasets.SplitInfo(name=split, num_examples=n, num_bytes=size, dataset_name=name))
    datasets.DatasetInfo(features=features, builder_name="parquet", dataset_name=name, config_name="default",
                         version="0.0.0", splits=infos).write_to_directory(str(prepared))
    return prepared


# --- all -----------------------------------------------------------------------------------------


def builders(hf_home: Path, texts: list[str]) -> dict[str, Callable[[], Path]]:
    """Hub id -> the function that builds its stand-in."""
    hub = hf_home / "hub"
    out: dict[str, Callable[[], Path]] = {
        LLAMA: lambda: build_llama(hub, texts),
        GPT2: lambda: build_gpt2_family(hub, texts, GPT2),
        GPT_NEO: lambda: build_gpt2_family(hub, texts, GPT_NEO),
        TOXIC_BERT: lambda: build_toxic_bert(hub, texts),
        NLI: lambda: build_nli(hub, texts),
        FLAIR_NER: lambda: build_flair_ner(hf_home / "flair"),
    }
    for repo_id in MARIAN:
        out[repo_id] = lambda r=repo_id: build_marian(hub, texts, r)
    rows = pd.read_json(SAMPLE, lines=True).tail(N_POSTS)  # the tokenizers never saw these posts
    for repo_id, splits in tldr_layouts(rows).items():
        out[repo_id] = lambda r=repo_id, s=splits: build_dataset(hf_home, r, s)
    return out


def build(hf_home: str | Path) -> dict[str, str]:
    """Build every stand-in into ``hf_home``; returns hub id -> the folder written, relative to ``hf_home``
    (also in <hf_home>/standins.json)."""
    hf_home = Path(hf_home).resolve()
    os.environ.update(env(hf_home))  # datasets reads HF_HOME when imported
    hf_home.mkdir(parents=True, exist_ok=True)
    texts = corpus()
    built = {repo_id: str(make().relative_to(hf_home)) for repo_id, make in builders(hf_home, texts).items()}
    (hf_home / "standins.json").write_text(json.dumps(built, indent=2) + "\n")
    log.info("built %d stand-ins in %s", len(built), hf_home)
    return built


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/paper/standins.py <HF_HOME>")
    for repo, folder in build(sys.argv[1]).items():
        print(f"{repo:48s} {folder}")
