"""Token-level distillation for both families: the loss, the settings mixed into the recipe configs, thin trainers.

The sequence-level recipe (SPEC 1) trains a student on the teacher's text. When the teacher is open, its
distribution over the next token is available too, and the student can match it token by token:

    loss = alpha * CE(student, data's response) + (1 - alpha) * T^2 * D(teacher_T || student_T)

on the response tokens only (the -100 labels of the causal family, as in SFT; every target token of a seq2seq
student), both distributions at temperature ``T``, ``D`` one of forward KL (default), reverse KL or the
generalized Jensen-Shannon divergence with its ``beta`` (GKD). The teacher is a local model with the student's
tokenizer (checked before it is loaded); it runs in eval mode without gradients, in bf16 or int8 if asked, and in
micro-batches of ``teacher_batch_size`` rows so its activations never exceed one chunk's. ``lmbda`` > 0 is the
on-policy option (GKD): that fraction of batches is replaced by the student's own sampled responses, scored by the
teacher (divergence only: the data's CE says nothing about the student's samples).

Offline: ``lamini-lm teacher-logits`` (:mod:`lamini_lm.train.teacher_logits`) stores the teacher's top-k
log-probs per response token once; ``--teacher_logits ARTIFACT`` trains on them without loading the teacher. The
divergence is then taken over the k stored tokens plus one remainder bucket holding the rest of each
distribution's mass (exact for the top-k, an approximation for the tail, which the buckets only compare in total).

Example:
    >>> import torch
    >>> from lamini_lm.train.distill import distillation_loss
    >>> logits = torch.zeros(1, 3, 5)
    >>> labels = torch.tensor([[1, 2, -100]])
    >>> out = distillation_loss(logits, labels, teacher_logits=torch.zeros(2, 5), alpha=0.0)
    >>> round(float(out.loss), 6)  # same distributions: no divergence
    0.0
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from lamini_lm.config import ConfigError, check_choice, check_range
from lamini_lm.errors import DataError, UsageError
from lamini_lm.families import IGNORE_INDEX
from lamini_lm.records import TEACHER_COLUMNS, TEACHER_RESPONSE_IDS  # the sparse columns' home
from lamini_lm.train.config import CausalRecipeConfig, Seq2SeqRecipeConfig
from lamini_lm.train.trainers import CausalRecipeTrainer, Seq2SeqRecipeTrainer

__all__ = [
    "DIVERGENCES",
    "LOSS_CHUNK_ELEMENTS",
    "TEACHER_COLUMNS",
    "CausalDistillConfig",
    "CausalDistillTrainer",
    "DistillArguments",
    "DistillLoss",
    "Seq2SeqDistillConfig",
    "Seq2SeqDistillTrainer",
    "TeacherColumnsCollator",
    "align_response_columns",
    "check_same_tokenizer",
    "check_teacher_logits",
    "distill_config_cls",
    "distill_trainer_cls",
    "distillation_facts",
    "distillation_loss",
    "divergence",
    "heldout_divergence",
    "is_distill_config",
    "load_teacher",
    "served_top_logprobs",
    "tokenizer_fingerprint",
    "wants_distillation",
]

logger = logging.getLogger(__name__)

DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")
TEACHER_DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")
_DISTILL_KEYS = ("teacher_model_name_or_path", "teacher_logits")
_EPS = 1e-6


# --- the loss ---------------------------------------------------------------------------------------------------


def divergence(teacher_logp, student_logp, kind: str = "forward_kl", beta: float = 0.5):
    """Per-row divergence between two log-prob tensors of the same shape ``[N, V]`` (last axis: the support).

    ``forward_kl``: KL(teacher || student); ``reverse_kl``: KL(student || teacher); ``jsd``: the generalized JSD
    of GKD, ``beta * KL(p || m) + (1 - beta) * KL(q || m)`` with ``m = beta * p + (1 - beta) * q``.
    """
    import math

    import torch

    def kl(log_a, log_b):  # sum a * (log a - log b), 0 where a is 0
        a = log_a.exp()
        return torch.where(a > 0, a * (log_a - log_b), 0.0).sum(-1)

    if kind == "forward_kl":
        return kl(teacher_logp, student_logp)
    if kind == "reverse_kl":
        return kl(student_logp, teacher_logp)
    if kind == "jsd":
        log_m = torch.logsumexp(torch.stack([teacher_logp + math.log(beta), student_logp + math.log(1 - beta)]), 0)
        return beta * kl(teacher_logp, log_m) + (1 - beta) * kl(student_logp, log_m)
    raise ValueError(f"unknown divergence {kind!r}; known: {', '.join(DIVERGENCES)}")


def _with_remainder(topk_logp):
    """``[N, k]`` log-probs of the top-k tokens -> ``[N, k + 1]``: the k and one bucket for the rest of the mass."""
    import torch

    mass = topk_logp.exp().sum(-1, keepdim=True).clamp(max=1 - _EPS)
    return torch.cat([topk_logp, torch.log1p(-mass)], -1)


class DistillLoss(NamedTuple):
    loss: Any  # the scalar to backpropagate
    ce: Any  # mean cross-entropy of the student on the response tokens (temperature 1)
    divergence: Any  # mean divergence per response token (at the temperature, before T^2)
    tokens: int  # response tokens in the batch


def response_logits(logits, labels, shift: bool):
    """The student's logits at the response positions, in row-major order, and the tokens they predict.

    ``shift``: a causal model's logit at position t predicts token t + 1."""
    positions, targets = _response_positions(labels, shift)
    return logits.reshape(-1, logits.shape[-1])[positions], targets


def _response_positions(labels, shift: bool):
    """Rows of ``logits.reshape(-1, V)`` at the response positions (row-major) and the tokens they predict."""
    import torch

    if shift:  # the logit at t predicts t + 1; the last position predicts nothing
        labels = torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], IGNORE_INDEX)], 1)
    flat = labels.reshape(-1)
    positions = (flat != IGNORE_INDEX).nonzero().squeeze(-1)
    return positions, flat[positions]


def _chunked_loss_cls():
    """The autograd Function of :func:`distillation_loss` (built on first use: torch is imported lazily)."""
    global _ChunkedLoss
    if _ChunkedLoss is not None:
        return _ChunkedLoss
    import torch

    class ChunkedLoss(torch.autograd.Function):
        """``sum over chunks of terms(chunk)`` with the gradient taken chunk by chunk in the forward pass.

        Only one chunk's fp32 ``[tokens, vocab]`` temporaries exist at a time; what is kept for the backward pass is
        the gradient of the logits (one tensor of the logits' shape and dtype, which their backward needs anyway).
        """

        @staticmethod
        def forward(ctx, flat_logits, positions, terms, chunk, weights, n):
            wants_grad = flat_logits.requires_grad
            grad = torch.zeros_like(flat_logits) if wants_grad else None
            ce_sum = div_sum = flat_logits.new_zeros((), dtype=torch.float32)
            for start in range(0, n, chunk):
                rows = positions[start : start + chunk]
                x = flat_logits.detach()[rows].float().requires_grad_(wants_grad)
                with torch.set_grad_enabled(wants_grad):
                    ce, div = terms(x, start, start + len(rows))
                    if wants_grad:
                        (g,) = torch.autograd.grad((weights[0] * ce + weights[1] * div) / n, x)
                        grad[rows] = g.to(grad.dtype)
                ce_sum, div_sum = ce_sum + ce.detach(), div_sum + div.detach()
                del x, ce, div
            ctx.grad = grad
            ce, div = ce_sum / n, div_sum / n
            return weights[0] * ce + weights[1] * div, ce, div

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad_loss, _grad_ce, _grad_div):
            grad, ctx.grad = ctx.grad, None
            return grad.mul_(grad_loss.to(grad.dtype)), None, None, None, None, None

    _ChunkedLoss = ChunkedLoss
    return ChunkedLoss


_ChunkedLoss = None
LOSS_CHUNK_ELEMENTS = 2**22  # fp32 [tokens, vocab] elements per loss chunk: 16 MiB per temporary


def distillation_loss(
    student_logits,
    labels,
    *,
    teacher_logits=None,
    teacher_token_ids=None,
    teacher_logprobs=None,
    alpha: float = 0.5,
    temperature: float = 1.0,
    kind: str = "forward_kl",
    beta: float = 0.5,
    shift: bool = False,
    ce_weight: float | None = None,
    chunk_tokens: int | None = None,
) -> DistillLoss:
    """``alpha * CE + (1 - alpha) * T^2 * D`` on the response tokens of a batch.

    ``student_logits``: ``[B, L, V]``; ``labels``: ``[B, L]`` with -100 off the response. The teacher is either
    ``teacher_logits`` ``[N, V']`` at the N response positions (row-major, as :func:`response_logits` orders them)
    or sparse: ``teacher_token_ids`` / ``teacher_logprobs`` ``[N, k]`` (its top-k at the temperature), compared
    over those k tokens plus a remainder bucket. Vocabularies padded to different sizes are cut to the smaller
    (the tokenizers match; the padding rows are never a real token). ``ce_weight`` overrides ``alpha`` for the CE
    term only (0 for on-policy batches, whose labels are the student's own samples).

    Memory: the response tokens are taken ``chunk_tokens`` at a time (default: ``LOSS_CHUNK_ELEMENTS`` / V), each
    chunk upcast to fp32 and its gradient computed at once, so the fp32 ``[tokens, vocab]`` temporaries never
    exceed one chunk's and the teacher's logits stay in their dtype; the result is the unchunked loss's.
    """
    import torch.nn.functional as F

    positions, targets = _response_positions(labels, shift)
    n = int(targets.numel())
    if n == 0:
        zero = student_logits.sum() * 0.0
        return DistillLoss(zero, zero.detach(), zero.detach(), 0)
    if teacher_logits is not None:
        if teacher_logits.shape[0] != n:
            raise ValueError(f"teacher logits for {teacher_logits.shape[0]} tokens, student has {n}")
        vocab = min(student_logits.shape[-1], teacher_logits.shape[-1])

        def logps(x, start, end):  # (teacher, student) log-probs of a chunk
            t_logp = F.log_softmax(teacher_logits[start:end, :vocab].float() / temperature, -1)
            return t_logp, F.log_softmax(x[:, :vocab] / temperature, -1)

    else:
        if teacher_token_ids is None or teacher_token_ids.shape[0] != n:
            got = None if teacher_token_ids is None else teacher_token_ids.shape[0]
            raise ValueError(f"teacher top-k for {got} tokens, student has {n}")

        def logps(x, start, end):
            full = F.log_softmax(x / temperature, -1)
            s_logp = _with_remainder(full.gather(-1, teacher_token_ids[start:end].long()))
            return _with_remainder(teacher_logprobs[start:end].float()), s_logp

    def terms(x, start, end):  # summed CE and divergence of a chunk of response tokens
        ce = F.cross_entropy(x, targets[start:end], reduction="sum")
        return ce, divergence(*logps(x, start, end), kind, beta).sum()

    flat = student_logits.reshape(-1, student_logits.shape[-1])
    chunk = chunk_tokens or max(1, LOSS_CHUNK_ELEMENTS // flat.shape[-1])
    weight = alpha if ce_weight is None else ce_weight
    weights = (weight, (1 - alpha) * temperature**2)
    loss, ce, div = _chunked_loss_cls().apply(flat, positions, terms, chunk, weights, n)
    return DistillLoss(loss, ce.detach(), div.detach(), n)


# --- settings ---------------------------------------------------------------------------------------------------


@dataclass
class DistillArguments:
    """What a distillation recipe adds to its family's config: the teacher and the loss."""

    teacher_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "the teacher (a Hub id or local folder) with the student's tokenizer, run alongside it"},
    )
    teacher_logits: str | None = field(
        default=None,
        metadata={
            "help": "a `lamini-lm teacher-logits` artifact: train on its rows and the teacher's stored top-k "
            "log-probs, without loading the teacher (sets dataset_name)"
        },
    )
    alpha: float = field(
        default=0.5, metadata={"help": "weight of the CE on the data's responses; 1 - alpha weighs the divergence"}
    )
    temperature: float = field(default=1.0, metadata={"help": "softmax temperature of teacher and student (> 0)"})
    divergence: str = field(
        default="forward_kl", metadata={"help": "forward_kl (teacher || student), reverse_kl, or jsd (with beta)"}
    )
    beta: float = field(default=0.5, metadata={"help": "the generalized JSD's mixture weight of the teacher, (0, 1)"})
    lmbda: float = field(
        default=0.0,
        metadata={
            "help": "on-policy (GKD): fraction of batches trained on the student's own samples; needs a live teacher"
        },
    )
    on_policy_max_new_tokens: int = field(default=128, metadata={"help": "longest on-policy sample (tokens)"})
    on_policy_temperature: float = field(default=1.0, metadata={"help": "sampling temperature of on-policy samples"})
    teacher_dtype: str = field(
        default="auto",
        metadata={"help": "teacher weights: auto (bf16 when bf16 is on, else fp32), float32, bfloat16, float16, int8"},
    )
    teacher_batch_size: int = field(
        default=8, metadata={"help": "rows per teacher forward pass (micro-batches: a bigger teacher fits)"}
    )

    def _check_distill(self) -> None:
        if not (self.teacher_model_name_or_path or self.teacher_logits):
            raise ConfigError(
                "distillation needs a teacher: --teacher_model_name_or_path (live) or --teacher_logits (offline)"
            )
        if self.teacher_logits and self.teacher_model_name_or_path:  # the stored log-probs win: no teacher loaded
            logger.info("--teacher_logits given: %s is not loaded", self.teacher_model_name_or_path)
            self.teacher_model_name_or_path = None
        check_range("alpha", self.alpha, 0, 1)
        check_range("temperature", self.temperature, 0, low_open=True)
        check_choice("divergence", self.divergence, DIVERGENCES)
        if not 0 < self.beta < 1:
            raise ConfigError(f"--beta: must be in (0, 1), got {self.beta}")
        check_range("lmbda", self.lmbda, 0, 1)
        check_range("on_policy_temperature", self.on_policy_temperature, 0, low_open=True)
        check_range("on_policy_max_new_tokens", self.on_policy_max_new_tokens, 1)
        check_range("teacher_batch_size", self.teacher_batch_size, 1)
        check_choice("teacher_dtype", self.teacher_dtype, TEACHER_DTYPES)
        if self.lmbda > 0 and self.teacher_logits:
            raise ConfigError("--lmbda: on-policy batches are scored by a live teacher; not with --teacher_logits")
        if getattr(self, "packing", False):
            raise ConfigError("--packing: not with distillation yet (the teacher's tokens are per row)")
        if self.teacher_logits:
            from pathlib import Path

            if not Path(self.teacher_logits).expanduser().is_dir():  # an artifact folder, never a Hub id
                raise ConfigError(
                    f"--teacher_logits {self.teacher_logits}: no such folder (a `lamini-lm teacher-logits` output, or "
                    "responses generated with --top_logprobs)"
                )
            self.dataset_name = self.teacher_logits
        if self.teacher_dtype == "int8":
            import torch
            from transformers.utils import is_bitsandbytes_available

            if not is_bitsandbytes_available() or not torch.cuda.is_available():
                raise ConfigError("--teacher_dtype int8: needs bitsandbytes and a CUDA GPU; use bfloat16 here")


@dataclass
class Seq2SeqDistillConfig(DistillArguments, Seq2SeqRecipeConfig):
    """An encoder-decoder student distilled token by token from an encoder-decoder teacher."""

    def __post_init__(self):
        super().__post_init__()
        self._check_distill()


@dataclass
class CausalDistillConfig(DistillArguments, CausalRecipeConfig):
    """A decoder-only student distilled token by token (response tokens only) from a decoder-only teacher."""

    def __post_init__(self):
        super().__post_init__()
        self._check_distill()


def is_distill_config(cfg) -> bool:
    return isinstance(cfg, DistillArguments)


def wants_distillation(values: dict | None = None, argv=()) -> bool:
    """Whether recipe settings (YAML/keyword dict) or flags name a teacher: then the recipe distils."""
    values = values or {}
    if any(values.get(k) for k in _DISTILL_KEYS):
        return True
    return any(t == f"--{k}" or t.startswith(f"--{k}=") for t in argv for k in _DISTILL_KEYS)


_CONFIGS = {"seq2seq": Seq2SeqDistillConfig, "causal": CausalDistillConfig}
_TRAINERS: dict[str, type] = {}


def distill_config_cls(family: str) -> type:
    """The distillation config of a family (a subclass of its recipe config)."""
    from lamini_lm.families import get_family

    name = get_family(family).name
    if name not in _CONFIGS:
        raise ConfigError(f"family {name!r} has no distillation recipe yet (known: {', '.join(sorted(_CONFIGS))})")
    return _CONFIGS[name]


def distill_trainer_cls(family) -> type:
    """The distillation trainer of a family (a subclass of its recipe trainer)."""
    from lamini_lm.families import get_family

    name = get_family(family).name
    if name not in _TRAINERS:
        raise ConfigError(f"family {name!r} has no distillation trainer yet (known: {', '.join(sorted(_TRAINERS))})")
    return _TRAINERS[name]


# --- the teacher ------------------------------------------------------------------------------------------------


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the vocabulary and the special tokens: equal fingerprints mean token ids mean the same text."""
    data = {"vocab": sorted(tokenizer.get_vocab().items()), "eos": tokenizer.eos_token_id}
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


def check_same_tokenizer(student_tokenizer, teacher_tokenizer, teacher: str, student: str = "the student") -> None:
    """Refuse a teacher whose tokenizer differs from the student's (one line saying how)."""
    s, t = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    if s == t and student_tokenizer.eos_token_id == teacher_tokenizer.eos_token_id:
        return
    differ = sum(1 for tok, i in t.items() if s.get(tok) != i) + sum(1 for tok in s if tok not in t)
    raise UsageError(
        f"--teacher_model_name_or_path {teacher}: its tokenizer is not {student}'s ({len(t)} vs {len(s)} tokens, "
        f"{differ} differ); token-level distillation needs the same vocabulary: choose a teacher of the same "
        "tokenizer (gpt2 -> gpt2-xl, flan-t5-small -> flan-t5-xl) or distil at sequence level (plain train)"
    )


def load_teacher(cfg, family, student_tokenizer=None, device=None):
    """The teacher of ``cfg`` (eval mode, no gradients, in ``teacher_dtype``), its tokenizer checked first."""
    import torch
    import transformers

    from lamini_lm.families import check_model_family, get_family
    from lamini_lm.sources import check_source

    name = cfg.teacher_model_name_or_path
    check_source(name, "model", "--teacher_model_name_or_path")
    check_model_family(
        name, family, "--teacher_model_name_or_path", "a token-level teacher is of the student's family and tokenizer"
    )
    if student_tokenizer is not None:
        teacher_tokenizer = transformers.AutoTokenizer.from_pretrained(name)
        check_same_tokenizer(student_tokenizer, teacher_tokenizer, name, cfg.model_name_or_path)
    kwargs: dict[str, Any] = {}
    dtype = cfg.teacher_dtype
    if dtype == "auto":
        dtype = "bfloat16" if (cfg.bf16 and not cfg.use_cpu) else "float32"
    if dtype == "int8":
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(load_in_8bit=True)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    else:
        kwargs["dtype"] = getattr(torch, dtype)
    teacher = getattr(transformers, get_family(family).auto_model).from_pretrained(name, **kwargs)
    if dtype != "int8" and device is not None:
        teacher = teacher.to(device)
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


def served_top_logprobs(manifest) -> int:
    """K when an artifact's rows carry the served teacher's top-K columns (``generate responses --top_logprobs K``),
    else 0.

    The fact's one home is the generation step's report (``details["top_logprobs"]``): every stage that keeps the
    rows (dedup, filter, decontaminate, push-dataset's release folder) carries the earlier reports in its manifest,
    so a cleaned artifact reads as the generation's own, without following paths back to it.
    """
    report = manifest.report("responses") if manifest is not None else None
    return int(report.details.get("top_logprobs") or 0) if report is not None else 0


def check_teacher_logits(cfg, tokenizer) -> None:
    """Refuse a teacher-logits artifact made for another tokenizer, temperature or family (one line)."""
    from lamini_lm.artifacts import read_manifest
    from lamini_lm.io import input_columns

    manifest = read_manifest(cfg.teacher_logits)
    if served_top_logprobs(manifest):  # `generate responses --top_logprobs K`, maybe cleaned since
        missing = [c for c in (*TEACHER_COLUMNS, TEACHER_RESPONSE_IDS) if c not in input_columns(cfg.teacher_logits)]
        if missing:
            raise UsageError(
                f"--teacher_logits {cfg.teacher_logits}: its rows have no {missing[0]!r} column (a step dropped the "
                "teacher columns); train on the generation's artifact or one of its dedup/filter/decontaminate outputs"
            )
        if abs(cfg.temperature - 1.0) > 1e-9:  # vLLM returns the raw log-probs (before the sampling temperature)
            raise UsageError(
                f"--temperature {cfg.temperature}: the served teacher's log-probs in {cfg.teacher_logits} are at "
                "temperature 1; use --temperature 1 (or recompute them with lamini-lm teacher-logits)"
            )
        return  # the tokens are checked row by row against the student's (align_response_columns)
    if manifest is None or manifest.stage != "teacher-logits":
        raise UsageError(
            f"--teacher_logits {cfg.teacher_logits}: not a `lamini-lm teacher-logits` artifact nor responses "
            "generated with --top_logprobs"
        )
    extra = manifest.extra
    if extra.get("tokenizer") != tokenizer_fingerprint(tokenizer):
        raise UsageError(
            f"--teacher_logits {cfg.teacher_logits}: computed by {extra.get('teacher')}, whose tokenizer is not "
            f"{cfg.model_name_or_path}'s; token-level distillation needs the same vocabulary"
        )
    if extra.get("family") != cfg.family:
        raise UsageError(f"--teacher_logits {cfg.teacher_logits}: made for a {extra.get('family')} student")
    if abs(float(extra.get("temperature", 1.0)) - cfg.temperature) > 1e-9:
        raise UsageError(
            f"--temperature {cfg.temperature}: the teacher's log-probs in {cfg.teacher_logits} are at temperature "
            f"{extra.get('temperature')}; use that, or recompute them at this one"
        )


# --- offline columns --------------------------------------------------------------------------------------------

_NO_MASS = -30.0  # the log-prob of a filler token at a position whose distribution the teacher did not return


def align_response_columns(raw, tokenized, tokenizer, decoder_only: bool, response_column: str = "response"):
    """``tokenized`` with the teacher's columns of responses generated with ``--top_logprobs`` (``raw``).

    The response tokens the student trains on become the teacher's own sampled ids (``teacher_response_ids``), not
    a re-tokenisation of its text, so each stored row of k is the teacher's distribution at the student's label
    position. The ids must be the student's and decode, with its tokenizer, to the row's response text (else the
    tokenizers differ: a one-line DataError). The student's final EOS, when the server did not report one (it
    stopped there, or max_tokens cut it), gets all its mass on EOS."""
    import datasets

    eos = tokenizer.eos_token_id
    names = [c for c in tokenized.column_names if c in ("input_ids", "attention_mask", "labels", "length")]
    out: dict[str, list] = {c: [] for c in (*names, *TEACHER_COLUMNS)}
    columns = zip(raw[response_column], raw[TEACHER_RESPONSE_IDS], raw[TEACHER_COLUMNS[0]], raw[TEACHER_COLUMNS[1]])
    for row, (text, sampled, top_ids, top_lps) in enumerate(columns):
        if not sampled:
            raise DataError(f"row {row}: no teacher log-probs (its request failed); filter failed rows first")
        top = max(max(sampled), max(max(r) for r in top_ids))
        if top >= len(tokenizer) or tokenizer.decode(sampled, skip_special_tokens=True) != text:
            raise DataError(
                f"row {row}: the teacher's sampled token ids are not its response text in the student's tokenizer "
                f"({len(tokenizer)} tokens): token-level distillation needs the teacher's tokenizer (or distil at "
                "sequence level: drop the teacher columns)"
            )
        resp = list(sampled)
        if resp[-1] != eos:  # the student learns to stop here: the teacher's mass all on EOS
            k = len(top_ids[0])
            fill = [i for i in range(k + 1) if i != eos][: k - 1]
            resp, top_ids, top_lps = resp + [eos], top_ids + [[eos, *fill]], top_lps + [[0.0] + [_NO_MASS] * (k - 1)]
        item = tokenized[row]
        if decoder_only:
            prompt = sum(1 for t in item["labels"] if t == IGNORE_INDEX)  # decoder-only: the prompt, then the answer
            ids, lab = item["input_ids"][:prompt] + resp, [IGNORE_INDEX] * prompt + resp
            new = {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": lab}
        else:  # encoder-decoder: the labels are the answer
            new = {"input_ids": item["input_ids"], "attention_mask": item["attention_mask"], "labels": resp}
        if "length" in names:
            new["length"] = len(new["input_ids"])
        for c in names:
            out[c].append(new[c])
        out[TEACHER_COLUMNS[0]].append(top_ids)
        out[TEACHER_COLUMNS[1]].append(top_lps)
    return datasets.Dataset.from_dict(out)


class TeacherColumnsCollator:
    """Wraps a family's collator: pads the sparse teacher columns of each row (``[R_row, k]``) into
    ``teacher_token_ids``/``teacher_logprobs`` ``[N, k]`` in the batch's row-major response order."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, features):
        import torch

        batch = self.inner([{k: v for k, v in f.items() if k not in TEACHER_COLUMNS} for f in features])
        ids, lps = [], []
        for f in features:
            i = torch.as_tensor(f[TEACHER_COLUMNS[0]], dtype=torch.long)
            lp = torch.as_tensor(f[TEACHER_COLUMNS[1]], dtype=torch.float32)
            n = sum(1 for x in f["labels"] if x != IGNORE_INDEX)
            if i.shape[0] != n or i.shape != lp.shape:
                raise DataError(
                    f"teacher logits for {i.shape[0]} response tokens, the row has {n}: the artifact was computed "
                    "with other lengths or data; recompute it with this recipe (lamini-lm teacher-logits)"
                )
            if n:
                ids.append(i)
                lps.append(lp)
        batch[TEACHER_COLUMNS[0]] = torch.cat(ids) if ids else torch.zeros(0, 1, dtype=torch.long)
        batch[TEACHER_COLUMNS[1]] = torch.cat(lps) if lps else torch.zeros(0, 1)
        return batch


# --- the trainers -----------------------------------------------------------------------------------------------


class _DistillMixin:
    """compute_loss of a distillation run; everything else is the family trainer's."""

    shift_labels = False

    def __init__(self, *args, teacher=None, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = self.args
        self.loss_is_scaled_for_ga = False  # compute_loss returns a per-micro-batch mean
        self._rng = random.Random(cfg.seed)
        self.teacher = teacher
        if cfg.teacher_logits:
            check_teacher_logits(cfg, self.processing_class)
            self.data_collator = TeacherColumnsCollator(self.data_collator)
        elif self.teacher is None:
            self.teacher = load_teacher(cfg, cfg.family, self.processing_class, device=cfg.device)
        self.kd_log: list[dict[str, float]] = []

    # -- teacher side --

    def _model_inputs(self, inputs):
        keep = ("input_ids", "attention_mask", "labels") if not self.shift_labels else ("input_ids", "attention_mask")
        return {k: inputs[k] for k in keep if k in inputs}

    def teacher_response_logits(self, inputs):
        """The teacher's logits at the batch's response positions ``[N, V]`` (in its dtype), in micro-batches,
        without grad; each micro-batch's rows are copied into one buffer, so no second ``[N, V]`` copy is made."""
        import torch

        teacher, chunk = self.teacher, self.args.teacher_batch_size
        labels = inputs["labels"]
        out, filled = None, 0
        with torch.no_grad():
            for start in range(0, labels.shape[0], chunk):
                part = {k: v[start : start + chunk] for k, v in self._model_inputs(inputs).items()}
                logits = teacher(**self._decoder_inputs(teacher, part)).logits
                rows = response_logits(logits, labels[start : start + chunk], self.shift_labels)[0]
                del logits
                if out is None:
                    n = len(_response_positions(labels, self.shift_labels)[0])
                    out = rows.new_empty((n, rows.shape[-1]))
                out[filled : filled + len(rows)] = rows
                filled += len(rows)
        return out

    @staticmethod
    def _decoder_inputs(model, part):
        """Model inputs; seq2seq: decoder inputs from the labels instead of the labels, so the model computes no
        loss of its own (its [batch, length, vocab] log-softmax would stay alive with the outputs)."""
        part = dict(part)
        if "labels" in part:
            part["decoder_input_ids"] = model.prepare_decoder_input_ids_from_labels(labels=part.pop("labels"))
        return part

    # -- on-policy samples --

    def _student_samples(self, model, inputs):
        import torch

        tok = self.processing_class
        unwrapped = self.accelerator.unwrap_model(model)
        was_training = unwrapped.training
        unwrapped.eval()
        gen = dict(
            do_sample=True,
            temperature=self.args.on_policy_temperature,
            max_new_tokens=self.args.on_policy_max_new_tokens,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        try:
            with torch.no_grad():
                new = self._sample(unwrapped, inputs, gen)
        finally:
            unwrapped.train(was_training)
        return new

    def _mask_after_eos(self, tokens):
        """-100 after each row's first EOS (the EOS itself is kept: the student learns to stop)."""
        import torch

        eos = tokens == self.processing_class.eos_token_id
        after = (torch.cumsum(eos.int(), -1) - eos.int()) > 0
        return tokens.masked_fill(after, IGNORE_INDEX)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        cfg = self.args
        inputs = dict(inputs)
        sparse = {k: inputs.pop(k) for k in TEACHER_COLUMNS if k in inputs}
        on_policy = model.training and cfg.lmbda > 0 and self.teacher is not None and self._rng.random() < cfg.lmbda
        if on_policy:
            inputs = self._student_samples(model, inputs)
        outputs = model(**self._decoder_inputs(self.accelerator.unwrap_model(model), self._model_inputs(inputs)))
        teacher = {}
        if sparse:
            teacher = dict(teacher_token_ids=sparse[TEACHER_COLUMNS[0]], teacher_logprobs=sparse[TEACHER_COLUMNS[1]])
        else:
            teacher = dict(teacher_logits=self.teacher_response_logits(inputs))
        result = distillation_loss(
            outputs.logits,
            inputs["labels"],
            alpha=cfg.alpha,
            temperature=cfg.temperature,
            kind=cfg.divergence,
            beta=cfg.beta,
            shift=self.shift_labels,
            ce_weight=0.0 if on_policy else None,
            **teacher,
        )
        if model.training:
            self.kd_log.append(
                {"ce": float(result.ce), "divergence": float(result.divergence), "on_policy": on_policy}
            )
        return (result.loss, outputs) if return_outputs else result.loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **kwargs):
        if getattr(self.args, "predict_with_generate", False) and not prediction_loss_only:
            inputs = {k: v for k, v in inputs.items() if k not in TEACHER_COLUMNS}  # generation sees the data only
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **kwargs)


class Seq2SeqDistillTrainer(_DistillMixin, Seq2SeqRecipeTrainer):
    """The seq2seq recipe trainer with the distillation loss (every target token is a response token)."""

    shift_labels = False

    def _sample(self, model, inputs, gen):
        tokens = model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], **gen)
        return {
            "input_ids": inputs["input_ids"],
            "attention_mask": inputs["attention_mask"],
            "labels": self._mask_after_eos(tokens[:, 1:]),  # drop the decoder start token
        }


class CausalDistillTrainer(_DistillMixin, CausalRecipeTrainer):
    """The causal recipe trainer with the distillation loss on the response tokens (-100 labels off them)."""

    shift_labels = True

    def _sample(self, model, inputs, gen):
        import torch

        tok = self.processing_class
        keep = (inputs["attention_mask"] == 1) & (inputs["labels"] == IGNORE_INDEX)
        prompts = [row[m] for row, m in zip(inputs["input_ids"], keep)]
        width = max(len(p) for p in prompts)
        pad = tok.pad_token_id
        ids = torch.full((len(prompts), width), pad, dtype=torch.long, device=inputs["input_ids"].device)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):  # left padding: every sample starts right after its prompt
            ids[i, width - len(p) :], mask[i, width - len(p) :] = p, 1
        out = model.generate(input_ids=ids, attention_mask=mask, **gen)
        answers = self._mask_after_eos(out[:, width:])
        rows = []
        for p, a in zip(prompts, answers):
            a = a[a != IGNORE_INDEX]
            rows.append((torch.cat([p, a]), torch.cat([torch.full_like(p, IGNORE_INDEX), a])))
        length = max(len(r[0]) for r in rows)
        new_ids = torch.full((len(rows), length), pad, dtype=torch.long, device=ids.device)
        new_labels = torch.full_like(new_ids, IGNORE_INDEX)
        new_mask = torch.zeros_like(new_ids)
        for i, (seq, lab) in enumerate(rows):  # right padding, as the recipe's collator pads
            new_ids[i, : len(seq)], new_labels[i, : len(seq)], new_mask[i, : len(seq)] = seq, lab, 1
        return {"input_ids": new_ids, "attention_mask": new_mask, "labels": new_labels}


_TRAINERS.update(seq2seq=Seq2SeqDistillTrainer, causal=CausalDistillTrainer)


# --- manifest facts ---------------------------------------------------------------------------------------------


def distillation_facts(cfg) -> dict[str, Any] | None:
    """What the manifest and the card say about a distillation run (None for plain SFT)."""
    if not is_distill_config(cfg):
        return None
    facts: dict[str, Any] = {
        "type": "token-level (on-policy GKD)" if cfg.lmbda > 0 else "token-level",
        "teacher": cfg.teacher_model_name_or_path,
        "alpha": cfg.alpha,
        "temperature": cfg.temperature,
        "divergence": cfg.divergence,
    }
    if cfg.divergence == "jsd":
        facts["beta"] = cfg.beta
    if cfg.lmbda > 0:
        facts["lmbda"] = cfg.lmbda
    if cfg.teacher_logits:
        from lamini_lm.artifacts import read_manifest

        manifest = read_manifest(cfg.teacher_logits)
        extra = manifest.extra if manifest is not None else {}
        top_k = served_top_logprobs(manifest)
        if top_k:  # kept from the served teacher's generation pass
            teacher = manifest.teacher_models[0] if manifest.teacher_models else None
            facts.update(type="token-level (served top-k, generation pass)", teacher=teacher, top_k=top_k)
        else:
            facts.update(type="token-level (offline top-k)", teacher=extra.get("teacher"), top_k=extra.get("top_k"))
    return facts


def heldout_divergence(student, teacher, rows, family, tokenizer, *, kind: str = "forward_kl", batch_size: int = 8):
    """Mean per-token divergence (temperature 1) of ``student`` from ``teacher`` on tokenised ``rows`` (the
    family's rows: ``input_ids``, ``attention_mask``, ``labels``); the held-out measure of how well KD worked."""
    import torch
    import torch.nn.functional as F

    from lamini_lm.families import get_family

    family = get_family(family)
    shift = family.decoder_only
    collate = family.collator(tokenizer)
    total, count = 0.0, 0
    student_was, teacher_was = student.training, teacher.training
    student.eval()
    teacher.eval()
    device = next(student.parameters()).device
    try:
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                batch = collate([dict(rows[i]) for i in range(start, min(start + batch_size, len(rows)))])
                batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "labels")}
                labels = batch["labels"]
                model_in = dict(batch) if not shift else {k: v for k, v in batch.items() if k != "labels"}
                s, _ = response_logits(student(**model_in).logits, labels, shift)
                t, _ = response_logits(teacher(**model_in).logits, labels, shift)
                vocab = min(s.shape[-1], t.shape[-1])
                d = divergence(F.log_softmax(t[:, :vocab].float(), -1), F.log_softmax(s[:, :vocab].float(), -1), kind)
                total += float(d.sum())
                count += int(d.numel())
    finally:
        student.train(student_was)
        teacher.train(teacher_was)
    return total / max(count, 1)
