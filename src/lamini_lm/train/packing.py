"""Fewer padded tokens per step: padding-free packing (decoder-only families) and token-budget batches (any family).

**Packing** (``packing: true``, decoder-only families): :class:`DataCollatorForPacking` takes the batch the sampler
chose (the same examples as without packing, so the batch in examples is unchanged) and lays its rows end to end in
rows of at most ``max_length`` tokens (best fit decreasing, as few padded tokens as it finds). ``position_ids`` restart
at 0 for every example and no attention mask is passed, which is how transformers (5.x,
``masking_utils.find_packed_sequence_indices``) recognises packed sequences and gives sdpa, eager and flex attention a
block-diagonal causal mask; flash attention reads the same ``position_ids`` as variable-length sequences, for which the
whole batch goes in one row. The first label of every example is -100, so no example learns to predict its own first
token from the previous example's last one. :func:`check_packing` proves on the recipe's model, before training, that
no token attends across examples (the gradient of one example's logits with respect to the other example's embeddings
is exactly zero) and refuses packing otherwise.

**Token-budget batches** (``batch_by_tokens: true``): :class:`TokenBudgetBatchSampler` buckets similar lengths
(as ``group_by_length`` does) and cuts each bucket into batches of at most ``max_tokens_per_batch`` tokens,
padding included (for encoder-decoder rows: ``n x (longest source + longest target)``). By default the budget is
calibrated so a batch holds ``per_device_train_batch_size`` examples on average: long examples go in smaller
batches, short ones in larger, the mean (the paper's batch) is kept and every step costs about the same.

Example:
    >>> from lamini_lm.train.packing import best_fit_decreasing
    >>> best_fit_decreasing([5, 3, 4, 2, 1], capacity=6)
    [[0, 4], [2, 3], [1]]
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

from lamini_lm.errors import UsageError
from lamini_lm.families import IGNORE_INDEX

__all__ = [
    "DataCollatorForPacking",
    "TokenBudgetBatchSampler",
    "best_fit_decreasing",
    "check_packing",
    "pack_rows",
    "row_lengths",
]

logger = logging.getLogger(__name__)

# attention implementations whose masks transformers builds from packed position_ids (block-diagonal causal)
_MASKED = ("sdpa", "eager", "flex_attention")


def best_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into bins of at most ``capacity`` (a longer item gets a bin of its own):
    longest first, each into the fullest bin it still fits."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        n = lengths[i]
        best = min((b for b in range(len(bins)) if room[b] >= n), key=lambda b: room[b], default=None)
        if best is None:
            bins.append([i])
            room.append(capacity - n)
        else:
            bins[best].append(i)
            room[best] -= n
    return bins


def pack_rows(lengths: Sequence[int], max_row_tokens: int | None = None) -> list[list[int]]:
    """Indices of ``lengths`` in rows of at most ``max_row_tokens`` (default and at least: the longest item), the
    row count and width chosen so that rows x widest row (the padded batch) is smallest: best fit decreasing into
    the width ``sum / k`` for the fewest rows k and up to 15 more, or until the width is the longest item."""
    longest, total = max(lengths), sum(lengths)
    cap = max(max_row_tokens or longest, longest)
    best, best_cost = None, None
    fewest = math.ceil(total / cap)
    for k in range(fewest, min(len(lengths), fewest + 15) + 1):
        width = max(longest, math.ceil(total / k))
        bins = best_fit_decreasing(lengths, width)
        cost = len(bins) * max(sum(lengths[i] for i in b) for b in bins)
        if best_cost is None or cost < best_cost:
            best, best_cost = bins, cost
        if width == longest or cost == total:
            break
    return best if best is not None else best_fit_decreasing(lengths, cap)


class DataCollatorForPacking:
    """Padding-free batches for decoder-only rows (``Family.packing_collator``).

    Returns ``input_ids``, ``labels`` and ``position_ids`` (no ``attention_mask``): the batch's examples packed
    into rows of at most ``max_row_tokens`` tokens (default: the longest example; :func:`pack_rows` picks the
    rows), each example's positions starting at 0, its first label -100. Rows are padded to the longest row; the
    padding is a segment of its own (positions from 0, labels -100), so it attends to nothing real. ``one_row``:
    the whole batch in one row (flash attention).
    """

    def __init__(self, tokenizer, model=None, max_row_tokens: int | None = None, one_row: bool = False):
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.max_row_tokens = max_row_tokens
        self.one_row = one_row

    def __call__(self, features: list[dict[str, Any]]):
        import torch

        seqs = [list(f["input_ids"]) for f in features]
        labels = [list(f["labels"]) for f in features]
        lengths = [len(s) for s in seqs]
        bins = [list(range(len(seqs)))] if self.one_row else pack_rows(lengths, self.max_row_tokens)
        width = max(sum(lengths[i] for i in b) for b in bins)
        ids, labs, pos = [], [], []
        for b in bins:
            row_ids, row_labels, row_pos = [], [], []
            for i in b:
                row_ids += seqs[i]
                row_labels += [IGNORE_INDEX] + labels[i][1:]
                row_pos += range(lengths[i])
            pad = width - len(row_ids)
            ids.append(row_ids + [self.pad_id] * pad)
            labs.append(row_labels + [IGNORE_INDEX] * pad)
            pos.append(row_pos + list(range(pad)))
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labs, dtype=torch.long),
            "position_ids": torch.tensor(pos, dtype=torch.long),
        }


def packing_one_row(model) -> bool:
    """Whether ``model``'s attention reads packed sequences from one row only (flash attention's varlen path)."""
    impl = str(getattr(getattr(model, "config", None), "_attn_implementation", None) or "")
    return "flash" in impl


def check_packing(model, use_cache: bool = False) -> bool:
    """Refuse packing (``UsageError``) unless ``model`` keeps packed examples apart; returns ``one_row``.

    The check: two short examples packed in one row as the collator packs them; the gradient of the second one's
    logits with respect to the first one's input embeddings must be exactly zero (any attention across examples
    makes it non-zero). It runs on the model as loaded, with the attention implementation it will train with.
    """
    import torch

    config = getattr(model, "config", None)
    impl = str(getattr(config, "_attn_implementation", None) or "")
    name = f"{getattr(config, 'model_type', type(model).__name__)} with attn_implementation={impl or 'unknown'}"
    if use_cache:
        raise UsageError(
            "--packing: needs --use_cache false (with a cache transformers does not read packed position ids, so "
            "examples would attend to each other)"
        )
    if not (impl in _MASKED or "flash" in impl):
        raise UsageError(
            f"--packing: {name} cannot keep packed examples apart; use sdpa, eager, flex_attention or flash "
            "attention (--packing false trains it with padding)"
        )
    from transformers.integrations import is_deepspeed_zero3_enabled

    if is_deepspeed_zero3_enabled():  # sharded weights: no forward outside the engine; the implementation check stands
        logger.warning("--packing: DeepSpeed ZeRO-3: packed-attention probe skipped (%s)", name)
        return packing_one_row(model)
    one_row = packing_one_row(model)
    param = next(model.parameters())
    vocab = model.get_input_embeddings().weight.shape[0]
    ids = torch.tensor([[(7 * i + 3) % vocab for i in range(11)]], device=param.device)
    position_ids = torch.tensor([list(range(6)) + list(range(5))], device=param.device)
    was_training = model.training
    model.eval()
    try:
        embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        dtype = torch.bfloat16 if one_row and param.dtype == torch.float32 else None
        with torch.autocast(param.device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(inputs_embeds=embeds, position_ids=position_ids, use_cache=False).logits
        (grad,) = torch.autograd.grad(logits[:, 6:].float().sum(), embeds)
    finally:
        model.train(was_training)
    leak = float(grad[:, :6].abs().max())
    if not math.isfinite(leak) or leak != 0.0:
        raise UsageError(
            f"--packing: {name} lets packed examples attend to each other (probe gradient {leak:.2e}); "
            "train it with --packing false"
        )
    return one_row


def row_lengths(dataset, decoder_only: bool) -> list[tuple[int, int]]:
    """(input tokens, label tokens) per tokenised row; decoder-only rows hold both in ``input_ids``: (n, 0)."""
    inputs = [len(x) for x in dataset["input_ids"]]
    if decoder_only:
        return [(n, 0) for n in inputs]
    return list(zip(inputs, (len(x) for x in dataset["labels"])))


class TokenBudgetBatchSampler:
    """Batches of at most ``max_tokens`` tokens, padding included, from buckets of similar lengths.

    Each epoch: shuffle (seed + epoch), cut into mega-batches of ``bucket_size`` examples, sort each by length
    (``max(input, label)`` tokens, as ``group_by_length``), fill batches greedily while ``n x (longest input +
    longest label) <= max_tokens``; an example over the budget alone is a batch of one. Batches are shuffled, the
    most expensive first (an out-of-memory shows at step 1). ``max_tokens=None``: calibrated so the mean batch holds
    ``batch_size`` examples.
    """

    def __init__(
        self,
        lengths: Sequence[tuple[int, int]],
        batch_size: int,
        max_tokens: int | None = None,
        seed: int = 0,
        bucket_size: int | None = None,
    ):
        if not lengths:
            raise UsageError("batch_by_tokens: no training rows")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.bucket_size = bucket_size or 50 * batch_size
        self.calibrated = max_tokens is None
        if max_tokens is None:
            max_tokens = self._calibrate()
        self.max_tokens = int(max_tokens)
        self._plan = self._batches(0)

    def _calibrate(self) -> int:
        mean = sum(a + b for a, b in self.lengths) / len(self.lengths)
        budget = max(1.0, self.batch_size * mean)
        for _ in range(4):  # padding makes a batch cost more than its examples' sum: scale until the mean is right
            self.max_tokens = int(budget)
            got = len(self.lengths) / len(self._batches(0))
            budget *= self.batch_size / got
        return int(budget)

    def _cost(self, idx: list[int]) -> int:
        return len(idx) * (max(self.lengths[i][0] for i in idx) + max(self.lengths[i][1] for i in idx))

    def _batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed + epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        batches: list[list[int]] = []
        for start in range(0, len(order), self.bucket_size):
            bucket = sorted(order[start : start + self.bucket_size], key=lambda i: -max(self.lengths[i]))
            batch: list[int] = []
            longest_in = longest_lab = 0
            for i in bucket:
                a, b = self.lengths[i]
                cost = (len(batch) + 1) * (max(longest_in, a) + max(longest_lab, b))
                if batch and cost > self.max_tokens:
                    batches.append(batch)
                    batch, longest_in, longest_lab = [], 0, 0
                batch.append(i)
                longest_in, longest_lab = max(longest_in, a), max(longest_lab, b)
            if batch:
                batches.append(batch)
        rng.shuffle(batches)
        top = max(range(len(batches)), key=lambda k: self._cost(batches[k]))
        batches[0], batches[top] = batches[top], batches[0]
        return batches

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self._plan = self._batches(epoch)

    @property
    def sampler(self) -> TokenBudgetBatchSampler:
        """Itself: accelerate's ``BatchSamplerShard`` (multi-process) passes ``set_epoch`` on to ``.sampler``."""
        return self

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._plan

    def __len__(self) -> int:
        return len(self._plan)

    def summary(self) -> dict[str, Any]:
        """What the plan of the current epoch trades: budget, batches, examples per batch (mean, min, max)."""
        sizes = [len(b) for b in self._plan]
        costs = [self._cost(b) for b in self._plan]
        real = sum(a + b for a, b in self.lengths)
        return {
            "max_tokens_per_batch": self.max_tokens,
            "budget_calibrated": self.calibrated,
            "batches_per_epoch": len(sizes),
            "examples_per_batch_mean": round(sum(sizes) / len(sizes), 2),
            "examples_per_batch_min": min(sizes),
            "examples_per_batch_max": max(sizes),
            "padding_waste": round(1 - real / sum(costs), 4),
        }
