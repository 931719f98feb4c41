"""Non-pad tokens/s, padding waste and peak memory of the training recipes' batching, side by side in one run.

Every arm trains the same model (built from config, same seed), on the same synthetic examples whose lengths follow
a LaMini-like spread (log-normal instruction and response lengths, a long tail of long answers), with the same
tokenisation, for one epoch, each arm in a fresh process (so its peak memory is its own):

* causal: (a) **baseline** Alpaca-style (``Trainer``, random batches, dynamic padding), (b) **grouped**
  (``train_sampling_strategy: group_by_length``, the recipes' default), (c) **packed** (grouped + ``packing: true``:
  the batch's examples packed padding-free into rows of ``max_length``), (d) **trl** ``SFTTrainer(packing=True)``
  (best-fit decreasing, padding-free; prompt/completion rows with the same Alpaca wrapper, completion-only loss),
  with as many packed rows per step as make the same tokens per step as the other arms;
* seq2seq: (a) baseline, (b) grouped, (c) **by tokens** (``batch_by_tokens: true``: token-budget batches,
  calibrated to the same mean examples per batch).

The figure is non-pad tokens per second of ``train_runtime``; padding waste is pad tokens / all tokens in the batches
(seq2seq: inputs and labels together); peak memory is the arm's process peak RSS on CPU (``max_memory_allocated``
on a GPU). The first losses of each arm are printed: grouped and packed see the same batches, so theirs match.

Usage:
    python benchmarks/bench_training.py --repeats 3                       # CPU: small models, both families
    python benchmarks/bench_training.py --size flan-t5-small --examples 20000 --batch-size 64 --bf16 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
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

    from lamini_lm.testing import build_tiny_tokenizer

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
    elif size == "cpu-medium":  # the two architectures' shapes, narrower and shallower, for a shared CPU
        t5 = T5Config(
            vocab_size=len(tok),
            d_model=256,
            d_ff=512,
            d_kv=32,
            num_layers=2,
            num_heads=4,
            feed_forward_proj="gated-gelu",
        )
        gpt = GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=256, n_layer=2, n_head=4)
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
    """Wraps a collator; counts the examples' own tokens and all tokens of the batches it makes."""

    def __init__(self, inner, seq2seq: bool):
        self.inner, self.seq2seq, self.real, self.total = inner, seq2seq, 0, 0

    def __call__(self, features):
        batch = self.inner(features)
        self.real += sum(len(f["input_ids"]) for f in features)
        self.total += batch["input_ids"].numel()
        if self.seq2seq:  # inputs and labels are padded separately: count both
            self.real += sum(len(f["labels"]) for f in features)
            self.total += batch["labels"].numel()
        return batch


ARMS = {
    "causal": ("baseline", "grouped", "packed", "packed_random", "trl"),
    "seq2seq": ("baseline", "grouped", "by_tokens"),
}


def _common(args, work: Path, name: str) -> dict:
    import torch

    return dict(
        output_dir=str(work / name),
        num_train_epochs=1,
        gradient_accumulation_steps=1,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        seed=0,
        bf16=args.bf16,
        use_cpu=not torch.cuda.is_available(),
    )


def _recipe_trainer(family: str, arm: str, model: Path, data: Path, work: Path, args):
    from lamini_lm.train import load_recipe

    overrides = dict(
        family=family,
        model_name_or_path=str(model),
        dataset_name=str(data),
        train_sampling_strategy="random" if arm in ("baseline", "packed_random") else "group_by_length",
        per_device_train_batch_size=args.batch_size,
        eval_split_size=0,
        resume_from_checkpoint="none",
        packing=arm.startswith("packed"),
        batch_by_tokens=arm == "by_tokens",
        **_common(args, work, f"{family}-{arm}"),
    )
    if family == "causal":
        overrides["max_length"] = 512
    else:
        overrides.update(max_source_length=512, max_target_length=512)
    trainer = load_recipe(**overrides).build()
    if trainer.packing_collator is not None:
        trainer.packing_collator = counter = CountingCollator(trainer.packing_collator, False)
    else:
        trainer.data_collator = counter = CountingCollator(trainer.data_collator, family == "seq2seq")
    return trainer, counter


def _trl_trainer(model: Path, data: Path, work: Path, args, mean_tokens: float):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from lamini_lm.families import get_family

    family = get_family("causal")
    tok = AutoTokenizer.from_pretrained(model)
    rows = datasets.load_from_disk(str(data))
    rows = rows.map(
        lambda r: {"prompt": family.wrap(r["instruction"]), "completion": r["response"] + tok.eos_token},
        remove_columns=rows.column_names,
    )
    # as many packed rows of max_length per step as carry the other arms' tokens per step
    per_step = max(1, round(args.batch_size * mean_tokens / 512))
    config = SFTConfig(
        per_device_train_batch_size=per_step,
        packing=True,
        max_length=512,
        completion_only_loss=True,
        dataset_num_proc=None,
        **_common(args, work, "causal-trl"),
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model), args=config, train_dataset=rows, processing_class=tok
    )
    trainer.data_collator = counter = CountingCollator(trainer.data_collator, False)
    return trainer, counter


def run_arm(family: str, arm: str, model: Path, data: Path, work: Path, args, mean_tokens: float) -> dict:
    """One training epoch of one arm in this process."""
    import torch

    if arm == "trl":
        trainer, counter = _trl_trainer(model, data, work, args, mean_tokens)
    else:
        trainer, counter = _recipe_trainer(family, arm, model, data, work, args)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    out = trainer.train()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = out.global_step
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "family": family,
        "arm": arm,
        "steps": steps,
        "seconds": out.metrics["train_runtime"],
        "step_time_s": wall / max(steps, 1),
        "real_tokens": counter.real,
        "batch_tokens": counter.total,
        "tokens_per_s": counter.real / out.metrics["train_runtime"],
        "cpu_s": cpu,
        "tokens_per_cpu_s": counter.real / cpu,
        "padding_waste": 1 - counter.real / counter.total,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "first_losses": [round(x, 3) for x in losses[:5]],
        "final_loss": out.training_loss,
        "batch_plan": getattr(trainer, "batch_plan", None),
    }


def _child(args) -> int:
    """``--arm``: run one arm ``--repeats`` times in this process; print one JSON line per repeat."""
    import resource

    work = Path(args.work)
    mean_tokens = json.loads((work / "meta.json").read_text())["mean_tokens"]
    for _ in range(args.repeats):
        r = run_arm(args.family, args.arm, work / args.family, work / "data", work, args, mean_tokens)
        r["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print("RESULT " + json.dumps(r), flush=True)
    return 0


def _trl_missing() -> str | None:
    try:
        import trl  # noqa: F401
    except ImportError:
        return "trl is not installed (pip install trl)"
    return None


def _fmt_row(family: str, r: dict, base: dict) -> str:
    mem = f"{r['peak_gpu_gib']:.2f} GiB GPU" if r["peak_gpu_gib"] else f"{r['peak_rss_gib']:.2f} GiB RSS"
    wall = r["tokens_per_s"] / base["tokens_per_s"]
    cpu = r["tokens_per_cpu_s"] / base["tokens_per_cpu_s"]
    return (
        f"| {family} | {r['arm']} | {r['tokens_per_s']:,.0f} ({wall:.2f}x) "
        f"| {r['tokens_per_cpu_s']:,.0f} ({cpu:.2f}x) "
        f"| {r['steps']} | {r['padding_waste']:.1%} | {mem} | {r['first_losses']} |"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--size", choices=["cpu-small", "cpu-medium", "flan-t5-small"], default="cpu-small")
    p.add_argument("--families", default="causal,seq2seq")
    p.add_argument("--repeats", type=int, default=3, help="repeats per arm; the median tokens/s is quoted")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch threads per arm (OMP_NUM_THREADS)")
    p.add_argument("--out-json", default=None)
    p.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm in this (child) process
    p.add_argument("--family", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.arm:
        return _child(args)
    print_machine(("torch", "transformers", "datasets", "accelerate", "trl"))
    import datasets

    from lamini_lm.families import get_family, lengths

    rows = synthetic_rows(args.examples, seed=0)
    results, table = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        datasets.Dataset.from_list(rows).save_to_disk(str(work / "data"))
        models = build_models(work, args.size, rows)
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(models["causal"])
        causal = get_family("causal")
        mean = statistics.mean(
            len(causal.tokenize(tok, r["instruction"], r["response"], lengths(max_length=512))["input_ids"])
            for r in rows
        )
        (work / "meta.json").write_text(json.dumps({"mean_tokens": mean}))
        print(
            f"# {args.examples} examples, mean {mean:.0f} tokens per causal row; "
            f"batch {args.batch_size}; size {args.size}"
        )
        for family in args.families.split(","):
            arms = {}
            for arm in ARMS[family]:
                if arm == "trl" and _trl_missing():
                    print(f"# {family} trl: skipped: {_trl_missing()}")
                    continue
                cmd = [sys.executable, __file__, "--arm", arm, "--family", family, "--work", str(work)]
                cmd += ["--repeats", str(args.repeats), "--batch-size", str(args.batch_size)]
                cmd += ["--bf16"] if args.bf16 else []
                env = {**os.environ, "TQDM_DISABLE": "1"}
                env.update({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})
                done = subprocess.run(cmd, capture_output=True, text=True, env=env)
                runs = [json.loads(line[7:]) for line in done.stdout.splitlines() if line.startswith("RESULT ")]
                if done.returncode or not runs:
                    print(f"# {family} {arm}: failed: {done.stderr.strip().splitlines()[-1:]}")
                    continue
                for r in runs:
                    print(json.dumps(r))
                med = {k: statistics.median(r[k] for r in runs) for k in ("tokens_per_s", "tokens_per_cpu_s")}
                arms[arm] = min(runs, key=lambda r: abs(r["tokens_per_s"] - med["tokens_per_s"])) | med
                arms[arm]["repeats_tokens_per_s"] = [round(r["tokens_per_s"]) for r in runs]
                arms[arm]["repeats_tokens_per_cpu_s"] = [round(r["tokens_per_cpu_s"]) for r in runs]
                results.append(arms[arm])
            base = arms.get("baseline")
            if base:
                table += [_fmt_row(family, r, base) for r in arms.values()]
        print(f"# load average at end: {os.getloadavg()[0]:.2f} (1 min)")
        print(
            "| family | arm | non-pad tokens/s wall (vs baseline) | non-pad tokens per CPU-second (vs baseline) "
            "| steps | padding waste | peak memory | first losses |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")  # medians of --repeats
        print("\n".join(table))
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
