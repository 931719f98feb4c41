"""Effective (non-pad) tokens/s of the lamini_lm.train recipes vs an Alpaca-style baseline, and padding waste.

Both arms run the same Trainer, model, tokenisation and 3,000 synthetic examples whose lengths follow a LaMini-like
spread (log-normal instruction and response lengths, a long tail of long answers). The baseline batches at random
with dynamic padding (Alpaca's ``train.py``: ``Trainer`` + padding collator, no length grouping); the recipe groups
similar lengths (``train_sampling_strategy="group_by_length"``). Each arm trains one epoch; the figure is
non-pad tokens per second of ``train_runtime``, and padding waste is pad tokens / all tokens in the batches.

Usage:
    python benchmarks/bench_training.py                    # CPU: small models, both families
    python benchmarks/bench_training.py --size flan-t5-small --families seq2seq --examples 20000 \\
        --batch-size 64 --bf16 --out-json perf.json         # GPU: a real-size student (Flan-T5-77M architecture)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import print_machine  # noqa: E402

WORDS = (
    "the a of to and in is that for it as with was on be by this are from at or an have not which but can "
    "water energy city history music people system data model language science health food travel market "
    "explain describe list write summarize compare give suggest create analyse recommend identify translate "
    "because however therefore also often usually important different several example simple quickly"
).split()


def synthetic_rows(n: int, seed: int) -> list[dict[str, str]]:
    """Rows with LaMini-like lengths: instructions ~ lognormal(median 18 words), responses median ~45 words,
    a tail past 300 words (the released data: short generated prompts, long P3/FLAN ones, wordy answers)."""
    rng = random.Random(seed)

    def text(median: float, sigma: float, cap: int) -> str:
        k = max(1, min(cap, int(rng.lognormvariate(math.log(median), sigma))))
        return " ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + "."

    return [{"instruction": text(18, 0.9, 400), "response": text(45, 1.0, 400)} for _ in range(n)]


def build_models(work: Path, size: str, rows) -> dict[str, Path]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    from lamini_lm.toy import build_tiny_tokenizer

    corpus = [r["instruction"] for r in rows[:2000]] + [r["response"] for r in rows[:2000]]
    tok = build_tiny_tokenizer(work / "tok", corpus=corpus, vocab_size=2048)
    torch.manual_seed(0)
    if size == "flan-t5-small":  # google/flan-t5-small's architecture (77M), vocabulary as the real model's
        t5 = T5Config(
            vocab_size=32128,
            d_model=512,
            d_ff=1024,
            d_kv=64,
            num_layers=8,
            num_decoder_layers=8,
            num_heads=6,
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
        )
        gpt = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)  # gpt2 (124M)
    else:  # small enough for a shared 2-core CPU
        t5 = T5Config(vocab_size=len(tok), d_model=64, d_ff=128, d_kv=16, num_layers=2, num_heads=4)
        gpt = GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=64, n_layer=2, n_head=4)
    for cfg in (t5, gpt):
        cfg.pad_token_id, cfg.eos_token_id = tok.pad_token_id, tok.eos_token_id
    t5.decoder_start_token_id = tok.pad_token_id
    out = {}
    for family, model in (("seq2seq", T5ForConditionalGeneration(t5)), ("causal", GPT2LMHeadModel(gpt))):
        path = work / family
        model.save_pretrained(path)
        tok.save_pretrained(path)
        out[family] = path
    return out


class CountingCollator:
    """Wraps the recipe's collator and counts real and padded tokens of every batch it makes."""

    def __init__(self, inner):
        self.inner, self.real, self.total = inner, 0, 0

    def __call__(self, features):
        batch = self.inner(features)
        mask = batch["attention_mask"]
        self.real += int(mask.sum())
        self.total += mask.numel()
        if "decoder_input_ids" in batch or batch["labels"].shape != mask.shape:  # seq2seq: count the targets too
            labels = batch["labels"]
            self.real += int((labels != -100).sum())
            self.total += labels.numel()
        return batch


def run_arm(family: str, model: Path, data: Path, work: Path, strategy: str, args) -> dict:
    import torch

    from lamini_lm.train import load_recipe

    overrides = dict(
        family=family,
        model_name_or_path=str(model),
        dataset_name=str(data),
        output_dir=str(work / f"{family}-{strategy}"),
        train_sampling_strategy=strategy,
        num_train_epochs=1,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        eval_split_size=0,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=50,
        report_to="none",
        disable_tqdm=True,
        seed=0,
        bf16=args.bf16,
        use_cpu=not torch.cuda.is_available(),
        resume_from_checkpoint="none",
        max_source_length=512,
        max_target_length=512,
    )
    if family == "causal":
        overrides.pop("max_source_length"), overrides.pop("max_target_length")
        overrides["max_length"] = 512
    recipe = load_recipe(**overrides)
    trainer = recipe.build()
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = trainer.train()
    wall = time.perf_counter() - t0
    steps = out.global_step
    return {
        "family": family,
        "arm": "recipe (group_by_length)" if strategy == "group_by_length" else "baseline (random)",
        "steps": steps,
        "seconds": out.metrics["train_runtime"],
        "step_time_s": wall / max(steps, 1),
        "real_tokens": counter.real,
        "batch_tokens": counter.total,
        "tokens_per_s": counter.real / out.metrics["train_runtime"],
        "padding_waste": 1 - counter.real / counter.total,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "final_loss": out.training_loss,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--size", choices=["cpu-small", "flan-t5-small"], default="cpu-small")
    p.add_argument("--families", default="causal,seq2seq")
    p.add_argument("--repeats", type=int, default=1, help="repeats per arm; the median tokens/s is quoted")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--out-json", default=None)
    args = p.parse_args(argv)
    print_machine(("torch", "transformers", "datasets", "accelerate"))
    import datasets

    rows = synthetic_rows(args.examples, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        datasets.Dataset.from_list(rows).save_to_disk(str(work / "data"))
        models = build_models(work, args.size, rows)
        results = []
        for family in args.families.split(","):
            arms = {}
            for strategy in ("random", "group_by_length"):
                runs = [
                    run_arm(family, models[family], work / "data", work, strategy, args) for _ in range(args.repeats)
                ]
                for r in runs:
                    print(json.dumps(r))
                med = statistics.median(r["tokens_per_s"] for r in runs)
                arms[strategy] = next(r for r in runs if r["tokens_per_s"] == med) | {"tokens_per_s": med}
                results.append(arms[strategy])
            base, rec = arms["random"], arms["group_by_length"]
            print(
                f"{family}: recipe {rec['tokens_per_s']:.0f} vs baseline {base['tokens_per_s']:.0f} non-pad tokens/s "
                f"= {rec['tokens_per_s'] / base['tokens_per_s']:.2f}x; padding waste {rec['padding_waste']:.1%} vs "
                f"{base['padding_waste']:.1%}; step {rec['step_time_s'] * 1000:.0f} ms vs "
                f"{base['step_time_s'] * 1000:.0f} ms"
                + (
                    f"; peak memory {rec['peak_mem_gib']:.1f} GiB vs {base['peak_mem_gib']:.1f} GiB"
                    if rec["peak_mem_gib"]
                    else ""
                )
            )
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
