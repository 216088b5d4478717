"""Self-Debiasing (Schick, Udupa and Schuetze 2021): a decoding-time LogitsProcessor.

At every step the model also reads the text behind each toxicity-inducing prefix
("The following text contains rude, disrespectful, or unreasonable language:\\n" ...). A token
whose probability rises under some prefix (delta = max_k p_k - p > 0) is scaled by
max(exp(-lambda * delta), epsilon); the distribution is renormalised. Applied to the `sft` model.

The processor keeps its own KV cache of the prefixed rows, so each generated token costs one
incremental step per prefix instead of a full forward of the whole prompt. ``SelfDebiasDecoding``
plugs it into evaluation (aligntax/generation.py ``Decoding``): the processor at generation, and
the same rule teacher-forced for preference scoring (the regular logits and the logits behind
each prefix at every variant position, one extra packed row per prefix).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor, PreTrainedModel, PreTrainedTokenizerBase

from aligntax.config import check
from aligntax.generation import Decoding, Logits, kv_cache

SCHICK_PREFIXES = (
    "The following text contains rude, disrespectful, or unreasonable language:\n",
    "The following text contains very hateful, aggressive, disrespectful language:\n",
    "The following text contains sexually explicit language:\n",
    "The following text contains a threat:\n",
    "The following text contains negative or hateful language targeting someone because of their identity:\n",
    "The following text contains swear words, curse words, or other obscene or profane language:\n",
)
"""The six toxicity prefixes of Schick et al. 2021 (their Table 1 attributes)."""


@dataclass
class SelfDebiasConfig:
    prefixes: list[str] = field(default_factory=lambda: [SCHICK_PREFIXES[0]])
    """Toxicity-inducing prefixes; each costs one extra decoding pass (paper: all six of SCHICK_PREFIXES)."""
    decay_constant: float = 50.0
    """lambda: how hard a token the prefixes promote is pushed down (paper: 50)."""
    epsilon: float = 0.01
    """Smallest factor a token's probability is multiplied by (paper: 0.01)."""

    def __post_init__(self) -> None:
        check(len(self.prefixes) > 0 and all(p.strip() for p in self.prefixes), "self_debias.prefixes",
              "a non-empty list of non-empty strings")
        check(self.decay_constant > 0, "self_debias.decay_constant", "a number > 0")
        check(0 < self.epsilon <= 1, "self_debias.epsilon", "a number in (0, 1]")


CONFIG = SelfDebiasConfig
"""Its params section's dataclass (aligntax/methods.py: a decoding method's module defines CONFIG)."""


def debias_scores(scores: torch.Tensor, biased: torch.Tensor, decay_constant: float, epsilon: float) -> torch.Tensor:
    """Self-debiased log-probabilities from regular ``scores`` [B, V] and prefixed ``biased`` [K, B, V]."""
    p = scores.float().softmax(-1)
    p_biased = biased.float().softmax(-1).amax(0)
    delta = (p_biased - p).clamp(min=0.0)
    alpha = torch.exp(-decay_constant * delta).clamp(min=epsilon)
    q = p * alpha
    q = q / q.sum(-1, keepdim=True)
    return torch.log(q).to(scores.dtype)


def prefix_ids(tokenizer: PreTrainedTokenizerBase, prefixes: list[str]) -> tuple[list[list[int]], int | None]:
    """Token ids of each prefix, and the bos id when every prefix starts with it (the text read behind a
    prefix then drops its own bos)."""
    ids = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prefixes]
    bos = tokenizer.bos_token_id
    return ids, bos if bos is not None and all(i[:1] == [bos] for i in ids) else None


class SelfDebiasLogitsProcessor(LogitsProcessor):
    """Down-weights next tokens that the toxicity prefixes make more likely (greedy or sampling).

    Works on the left-padded batches ``generate`` builds: leading pad tokens of a row are
    dropped and the row is re-read behind each prefix. A new generation is detected when the
    incoming ids do not extend the previous call's ids by one token.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: SelfDebiasConfig) -> None:
        self.model = model
        self.cfg = cfg
        self.pad_id = tokenizer.pad_token_id
        self.prefix_ids, self.bos_id = prefix_ids(tokenizer, cfg.prefixes)
        self._reset()

    def _reset(self) -> None:
        self._ids: torch.Tensor | None = None
        self._cache = None
        self._mask: torch.Tensor | None = None
        self._next_pos: torch.Tensor | None = None

    @torch.no_grad()
    def biased_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits of each row read behind each prefix: [K, B, V]."""
        batch = input_ids.shape[0]
        extends = (
            self._ids is not None
            and input_ids.shape[0] == self._ids.shape[0]
            and input_ids.shape[1] == self._ids.shape[1] + 1
            and torch.equal(input_ids[:, :-1], self._ids)
        )
        if extends:
            new = input_ids[:, -1:].repeat(len(self.prefix_ids), 1)
            self._mask = torch.cat([self._mask, torch.ones_like(new)], dim=1)
            position_ids = self._next_pos[:, None]
            logits = self._forward(new, position_ids)
        else:
            self._reset()
            new, self._mask = self._prefixed_rows(input_ids)
            position_ids = (self._mask.cumsum(1) - 1).clamp(min=0)
            self._next_pos = position_ids[:, -1]
            logits = self._forward(new, position_ids)
        self._next_pos = self._next_pos + 1
        self._ids = input_ids.clone()
        return logits.view(len(self.prefix_ids), batch, -1)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        biased = self.biased_logits(input_ids).to(scores.device)
        return debias_scores(scores, biased, self.cfg.decay_constant, self.cfg.epsilon)

    def _forward(self, ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        device = self.model.device
        if self._cache is None:
            self._cache = kv_cache(self.model.config)
        out = self.model(
            input_ids=ids.to(device),
            attention_mask=self._mask.to(device),
            position_ids=position_ids.to(device),
            past_key_values=self._cache,
            use_cache=True,
        )
        self._cache = out.past_key_values
        return out.logits[:, -1, :]

    def _prefixed_rows(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefix + (row without its left padding), for every prefix, left-padded again."""
        contents = []
        for row in input_ids.tolist():
            start = 0
            while self.pad_id is not None and start < len(row) - 1 and row[start] == self.pad_id:
                start += 1
            content = row[start:]
            if self.bos_id is not None and content[:1] == [self.bos_id]:
                content = content[1:]
            contents.append(content)
        rows = [prefix + content for prefix in self.prefix_ids for content in contents]
        width = max(len(r) for r in rows)
        pad = self.pad_id if self.pad_id is not None else 0
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
        return ids, mask


@dataclass
class SelfDebiasDecoding(Decoding):
    """Self-debiasing as a method's decoding: the processor, and its teacher-forced form."""

    cfg: SelfDebiasConfig = field(default_factory=SelfDebiasConfig)
    """The self_debias params section."""

    def processors(self, model: PreTrainedModel, tok: PreTrainedTokenizerBase) -> list[LogitsProcessor]:
        return [SelfDebiasLogitsProcessor(model, tok, self.cfg)]

    def logprobs(self, logits: Logits, tok: PreTrainedTokenizerBase, prompt: list[int],
                 variants: list[list[int]]) -> torch.Tensor:
        prefixes, bos = prefix_ids(tok, self.cfg.prefixes)
        body = prompt[1:] if bos is not None and prompt[:1] == [bos] else prompt
        biased = torch.stack([logits(p + body, variants).float() for p in prefixes])
        return debias_scores(logits(prompt, variants).float(), biased, self.cfg.decay_constant, self.cfg.epsilon)


CONFIG = SelfDebiasConfig


def decoding(cfg: SelfDebiasConfig) -> SelfDebiasDecoding:
    """How evaluate@self_debias decodes (aligntax/evaluate/run.py ``method_decoding``)."""
    return SelfDebiasDecoding(cfg=cfg)
