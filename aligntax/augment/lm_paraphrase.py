"""The base LM as a second paraphraser: a 3-shot "Original text / Paraphrase" prompt, sampled.

Back-translation through the packaged en<->pt models leaves about a third of the posts without
a paraphrase that passes the filters (negations and meaning drift), so those posts lose their
contrastive group. The LM fills those gaps: its candidates go through the same filters (no new
entity, no new negation, meaning score >= ``min_meaning``) as the back-translations.
"""

from __future__ import annotations

from collections.abc import Sequence

from aligntax.augment import lm
from aligntax.augment.text import clean_generation
from aligntax.generation import truncate_text

SHOTS = (
    ("I forgot my keys and got locked out of my apartment in the rain.",
     "I got locked out of my apartment in the rain because I forgot my keys."),
    ("My cat knocked a glass of water onto my laptop during a meeting.",
     "During a meeting, my cat spilled a glass of water on my laptop."),
    ("I waved back at a stranger who was actually waving at someone else.",
     "A stranger was waving at someone else and I waved back."),
)


SHOTS_TEXT = "".join(f"Original text: {a}\nParaphrase: {b}\n\n" for a, b in SHOTS)
"""The few-shot part every paraphrase prompt starts with (prefilled once per call)."""


def paraphrase_prompt(summary: str) -> str:
    """The 3-shot paraphrase prompt, ending where the model writes the paraphrase."""
    return f"{SHOTS_TEXT}Original text: {summary.strip()}\nParaphrase:"


def lm_paraphrases(
    generator: tuple,
    summaries: Sequence[str],
    samples: int,
    max_summary_tokens: int,
    max_new_tokens: int,
    seeds: Sequence[int],
    temperature: float,
    top_p: float,
    batch_size: int = 1,
) -> list[list[str]]:
    """``samples`` sampled paraphrases of each summary (first line, cleaned); ``generator`` = (model, tok, stop ids).

    Each summary's prompt is prefilled once and its samples are drawn with its own seed (``seeds``, one
    per summary; ``lm.sample_each``, ``batch_size`` summaries at a time), so its paraphrases do not depend
    on which other posts needed the LM.
    """
    model, tok, stop = generator
    prompts = [paraphrase_prompt(truncate_text(tok, summary, max_summary_tokens)) for summary in summaries]
    outs = lm.sample_each(model, tok, prompts, samples, seeds, max_new_tokens, temperature, top_p, stop, SHOTS_TEXT,
                          batch_size)
    return [[clean_generation(o) for o in texts] for texts in outs]
