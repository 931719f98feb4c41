"""``lamini-lm teacher-logits RECIPE --output DIR``: the teacher's top-k log-probs, computed once, stored sparse.

A distillation recipe (one naming ``teacher_model_name_or_path``) is read exactly as ``lamini-lm train`` reads it:
its data, columns, family and lengths decide the tokens, so the stored log-probs line up with the tokens the
student trains on. For every response token of every row (the -100 labels of a causal student stay out) the
teacher's k most likely next tokens at the recipe's temperature are kept: ``teacher_token_ids`` (int32) and
``teacher_logprobs`` (float16), ``[response tokens, k]`` per row, beside the data's own columns. The artifact is
a ``datasets`` folder with a ``lamini_lm.json`` manifest (inputs: the dataset and the teacher; the teacher's
tokenizer fingerprint, k, temperature, bytes per token). Then::

    lamini-lm train RECIPE --teacher_logits DIR

trains on it without loading the teacher; the divergence is taken over the k tokens plus a remainder bucket
(:mod:`lamini_lm.train.distill`).

Example:
    >>> from lamini_lm.train.teacher_logits import TeacherLogitsArguments
    >>> TeacherLogitsArguments(output="runs/logits").top_k
    20
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamini_lm.config import ConfigError, check_range, check_required

__all__ = ["STAGE", "TeacherLogitsArguments", "main", "run_teacher_logits"]

logger = logging.getLogger(__name__)

STAGE = "teacher-logits"


@dataclass
class TeacherLogitsArguments:
    """Where the teacher's log-probs go and how many per token."""

    output: str | None = field(
        default=None, metadata={"required": True, "help": "the artifact folder (datasets + lamini_lm.json)"}
    )
    top_k: int = field(default=20, metadata={"help": "teacher tokens kept per response token (8-50 typical)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing teacher-logits artifact"})

    def __post_init__(self):
        check_required(self)
        check_range("top_k", self.top_k, 1)


def _splits(cfg):
    """The recipe's data as {split: Dataset}: its train split, and its eval split when it has one."""
    import datasets

    from lamini_lm.train.data import _load_any

    data = _load_any(cfg.dataset_name, cfg.dataset_config_name)
    if isinstance(data, datasets.Dataset):
        data = datasets.DatasetDict({cfg.train_split: data})
    if cfg.train_split not in data:
        raise ConfigError(f"{cfg.dataset_name}: no split {cfg.train_split!r}; it has {sorted(data)}")
    return {s: data[s] for s in (cfg.train_split, cfg.eval_split) if s in data}


def _topk_rows(teacher, family, tokenizer, rows, cfg, top_k: int, shift: bool, device):
    """Yield one ``{teacher_token_ids, teacher_logprobs}`` per tokenised row, in order."""
    import torch
    import torch.nn.functional as F

    from lamini_lm.train.distill import response_logits

    collate = family.collator(tokenizer)
    size = cfg.teacher_batch_size
    for start in range(0, len(rows), size):
        batch = collate([rows[i] for i in range(start, min(start + size, len(rows)))])
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels")
        if not shift:
            batch["decoder_input_ids"] = teacher.prepare_decoder_input_ids_from_labels(labels=labels)
        with torch.no_grad():
            logits = teacher(**batch).logits
        picked, _ = response_logits(logits, labels, shift)
        logp = F.log_softmax(picked.float() / cfg.temperature, -1)
        values, ids = logp.topk(min(top_k, logp.shape[-1]), -1)
        mask = (labels[:, 1:] if shift else labels) != -100
        counts = mask.sum(-1).tolist()
        offset = 0
        for n in counts:
            yield {
                "teacher_token_ids": ids[offset : offset + n].int().cpu().tolist(),
                "teacher_logprobs": values[offset : offset + n].half().cpu().tolist(),
            }
            offset += n


def run_teacher_logits(cfg, args: TeacherLogitsArguments) -> Path:
    """Compute and store the teacher's top-k log-probs for the recipe ``cfg``'s data; returns the artifact folder."""
    import datasets
    from datasets.arrow_writer import ArrowWriter

    from lamini_lm.artifacts import Manifest, artifact_output, check_output, describe_input, lineage
    from lamini_lm.records import teacher_logits_features
    from lamini_lm.train.distill import is_distill_config, load_teacher, tokenizer_fingerprint
    from lamini_lm.train.recipe import Recipe

    if not is_distill_config(cfg) or not cfg.teacher_model_name_or_path:
        raise ConfigError("--teacher_model_name_or_path: name the teacher whose log-probs to store")
    check_output(args.output, STAGE, args.overwrite)
    started = time.perf_counter()
    recipe = Recipe(cfg)
    splits = _splits(cfg)
    tokenizer = recipe.load_tokenizer()
    device = cfg.device
    teacher = load_teacher(cfg, recipe.family, tokenizer, device=device)
    shift = recipe.family.decoder_only
    features = teacher_logits_features()
    from lamini_lm.train.data import tokenize_dataset

    tokens, column_bytes, out = 0, 0, {}
    with artifact_output(args.output, STAGE, args.overwrite) as tmp:
        scratch = Path(tmp) / "_scratch"
        scratch.mkdir()
        for split, raw in splits.items():
            rows = tokenize_dataset(raw, tokenizer, recipe.family, cfg, desc=f"tokenise {split}")
            path = scratch / f"{split}.arrow"
            with ArrowWriter(features=features, path=str(path)) as writer:
                for row in _topk_rows(teacher, recipe.family, tokenizer, rows, cfg, args.top_k, shift, device):
                    tokens += len(row["teacher_token_ids"])
                    writer.write(row)
                writer.finalize()
            column_bytes += path.stat().st_size
            sparse = datasets.Dataset.from_file(str(path))
            out[split] = datasets.concatenate_datasets([raw.flatten_indices(), sparse], axis=1)
        datasets.DatasetDict(out).save_to_disk(str(tmp))
        import shutil

        shutil.rmtree(scratch)
        data_in = describe_input(cfg.dataset_name, role="dataset")
        teachers = []
        if data_in.get("artifact"):
            for m in lineage(data_in["artifact"]):
                teachers += [t for t in m.teacher_models if t not in teachers]
        per_token = column_bytes / tokens if tokens else None
        Manifest(
            stage=STAGE,
            config={**cfg.to_dict(), "top_k": args.top_k},
            inputs=[data_in, describe_input(cfg.teacher_model_name_or_path, role="teacher")],
            rows=sum(len(d) for d in out.values()),
            tokens=tokens,
            teacher_models=teachers,
            timings={"teacher_s": round(time.perf_counter() - started, 1)},
            extra={
                "teacher": cfg.teacher_model_name_or_path,
                "family": recipe.family.name,
                "tokenizer": tokenizer_fingerprint(tokenizer),
                "top_k": args.top_k,
                "temperature": cfg.temperature,
                "lengths": {
                    k: getattr(cfg, k)
                    for k in ("max_length", "max_source_length", "max_target_length")
                    if hasattr(cfg, k)
                },
                "splits": {s: len(d) for s, d in out.items()},
                "response_tokens": tokens,
                "bytes_per_position": round(per_token, 1)
                if per_token
                else None,  # per response token ("token" keys are redacted)
            },
        ).save(tmp)
    return Path(args.output)


EXAMPLES = """\
  lamini-lm teacher-logits recipes/lamini-gpt-124m-kd.yaml --output runs/gpt2-xl-top20 --top_k 20
  lamini-lm train recipes/lamini-gpt-124m-kd.yaml --teacher_logits runs/gpt2-xl-top20 --output_dir runs/gpt-kd"""


def main(argv: list[str] | None = None, prog: str = "lamini-lm teacher-logits") -> int:
    """Parse a distillation recipe plus ``--output/--top_k``, store the teacher's top-k log-probs, say where."""
    from lamini_lm.train.recipe import recipe_parser

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] in ("-h", "--help") and len(argv) == 1):
        from lamini_lm.train.recipe import print_recipe_usage

        print_recipe_usage(prog, "Store a distillation recipe's teacher top-k log-probs per response token.", EXAMPLES)
        return 0
    parser, _ = recipe_parser(
        argv,
        prog,
        extra=(TeacherLogitsArguments,),
        description="Store a distillation recipe's teacher top-k log-probs per response token (train offline then).",
        examples=EXAMPLES,
    )
    cfg, args = parser.parse(argv)
    out = run_teacher_logits(cfg, args)
    from lamini_lm.artifacts import read_manifest

    extra: dict[str, Any] = read_manifest(out).extra
    print(
        f"stored top-{extra['top_k']} log-probs of {extra['teacher']} for {extra['response_tokens']} response tokens "
        f"({extra['bytes_per_position']} bytes/token) in {out}"
    )
    return 0
