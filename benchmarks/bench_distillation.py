"""Token-level distillation (KD) against sequence-level distillation (SFT on the teacher's greedy outputs), on CPU.

The task, with a known answer and a simple per-token rule: "walk K xN: o 7 p c" -> N letters, each K places after
the one before along ten letters on a circle, from the start letter c ("walk 2 x3: o 7 p c" -> "= e h k"); K in
1..4, N in 3..5, three distractor symbols (none of them one of the ten), every symbol one token of the tiny
tokenizer: 61,440 prompts, too many to memorise, so a model must learn the rule. Each output token follows from
the previous one and K, and the start letter is found by what it is, not where it is, so a small model learns the
rule in a few hundred steps (copying by position, the previous version of this task, a tiny T5 learns slowly).

The protocol, fixed before the measured runs (nothing below was tuned on KD against SFT):

* 200 prompts are held out (a fixed shuffle); nobody trains on them. The rest are the pool.
* The teacher (T5 shape, 64 wide x 2 layers; ``--family causal``: GPT-2 shape) trains on the true answers of
  25,600 pool prompts, each seen once: 800 steps x batch 32, lr 3e-3, cosine with 30 warmup steps. Its held-out
  exact-match accuracy and mean top-1 probability on its own answers are printed (the aim: >= 0.9, confident).
* Per seed (0, 1, 2; five seeds in the second protocol), 1,000 prompts are drawn from the pool and answered
  greedily by the teacher. Two students (32 wide x 2 layers, the same fresh init per seed) train on exactly those
  rows with equal compute and the teacher's schedule: 800 steps (2,000 in the second protocol) x batch 16, lr
  3e-3, cosine with 30 warmup steps, through the library's recipes
  (``lamini_lm.train.load_recipe``):
  - SFT: the family's recipe on the teacher's greedy answers (sequence-level distillation, the paper's method);
  - KD: the distillation recipe with its defaults, the same rows plus the live teacher's next-token distributions
    (``0.5 * CE + 0.5 * KL(teacher || student)``, temperature 1, the teacher on the same CPU).
* Held out: KL(teacher || student) per response token on the teacher's greedy answers, and the student's greedy
  exact-match accuracy against the true answer. Median of the 3 seeds. Also the training throughput (tokens/s
  of ``train_runtime``) of KD against SFT, and the storage per token of offline teacher logits (top-8/20/50).

A first run of this protocol with a smaller student budget (200 prompts, 300 steps, lr 1e-2 constant) left both
students near zero accuracy (seed 0, seq2seq: SFT 0.020, KD 0.025; causal SFT 0.010), a comparison that says
nothing; the budget above was chosen then, for both arms alike, before any run of it.

The second protocol (the defaults now), declared on 2026-12-01 before any run of it, after the first protocol's
runs (800 steps, seeds 0-2) left each arm's accuracy spread over seeds far wider than the gap between the arms
(causal SFT 0.045 / 0.81 / 0.11, seq2seq KD 0.41 / 0.80 / 0.54): at 800 steps a student is still finding the rule
or not, so the comparison was of luck, not of methods. The change, for both arms and both families alike: 2,000
steps instead of 800 (the same cosine schedule with 30 warmup steps, stretched), and five seeds (0-4) instead of
three. Nothing else changed (teacher, data, widths, lr, alpha, temperature). The medians of seeds 0-2 are printed
too, as the issue asks for three; the verdict is on all five. ``--steps 800 --seeds 0 1 2`` reruns the first.

The third protocol (``--alphas 0.5 0.7 0.9``), declared on 2026-12-01 before any run of it, after the second
protocol's runs met the KL target in both families but left the seq2seq KD student's held-out accuracy 0.045 below
SFT's (4 of 5 seeds), while the KD trainer at alpha 1.0 reproduced SFT exactly: alpha, the weight of the CE on the
teacher's answers, is the knob between the two, and a user would choose it on data of their own, not on the test
set. So: per seed, one KD student per alpha in {0.5, 0.7, 0.9} beside the SFT student (everything else as in the
second protocol), each also scored on 200 validation prompts (from the pool, none in the held-out set, the
teacher's data or any seed's training data). The rule, applied to medians over the seeds on validation only: the
alphas whose KL is at most 0.8x SFT's are eligible; of those, the one with the best accuracy (ties: the smaller
alpha); if none is eligible, the lowest KL. The held-out verdict is on that alpha; every alpha's held-out medians
are printed too. SFT has no knob of the kind, so it gets one student per seed.

Exit status 0 when KD's median KL is at most 0.8x SFT's and its median accuracy at least SFT's.

Usage:
    python benchmarks/bench_distillation.py                    # seq2seq, ~30 minutes on one core
    python benchmarks/bench_distillation.py --family causal
    python benchmarks/bench_distillation.py --alphas 0.5 0.7 0.9   # the third protocol (alpha chosen on validation)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import print_machine  # noqa: E402

LETTERS = "abcdefhikm"  # ten letters that the tiny tokenizer keeps as single " x" tokens
STEPS = (1, 2, 3, 4)  # K: the walk's stride
LENGTHS = (3, 4, 5)  # N: letters in the answer


def walk(k: int, n: int, start: str) -> str:
    """The true answer: N letters, each K places after the one before along the ten (a circle), from ``start``."""
    out, i = [], LETTERS.index(start)
    for _ in range(n):
        i = (i + k) % len(LETTERS)
        out.append(LETTERS[i])
    return "= " + " ".join(out)


NOISE = (
    "o",
    "p",
    "n",
    "5",
    "6",
    "7",
    "8",
    "9",
)  # distractor symbols (single tokens, none of them a letter of the walk)


def prompt_space() -> list[tuple[int, int, str]]:
    """Every (K, N, symbols) prompt: three distractors, then the start letter (the only one of the ten)."""
    return [
        (k, n, f"{x} {y} {z} {c}")
        for k in STEPS
        for n in LENGTHS
        for x in NOISE
        for y in NOISE
        for z in NOISE
        for c in LETTERS
    ]


def task_rows(prompts) -> list[dict[str, str]]:
    return [{"instruction": f"walk {k} x{n}: {w}", "response": walk(k, n, w[-1])} for k, n, w in prompts]


def split_prompts(seed: int, held_out: int):
    """The 61,440 prompts, shuffled by ``seed``: (held out, the rest: the teacher's and students' pool)."""
    prompts = prompt_space()
    random.Random(seed).shuffle(prompts)
    return prompts[:held_out], prompts[held_out:]


def build(family: str, tokenizer, path: Path, width: int, layers: int, seed: int) -> Path:
    """A fresh model of ``family`` from config: GPT-2 (causal) or T5 (seq2seq) shape, ``width`` wide."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    ids = dict(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if family == "causal":
        config = GPT2Config(
            vocab_size=len(tokenizer), n_positions=128, n_embd=width, n_layer=layers, n_head=2, n_inner=2 * width,
            bos_token_id=tokenizer.bos_token_id, **ids,
        )  # fmt: skip
        model = GPT2LMHeadModel(config)
    else:
        config = T5Config(
            vocab_size=len(tokenizer), d_model=width, d_ff=2 * width, d_kv=16, num_layers=layers, num_heads=2,
            relative_attention_num_buckets=32, decoder_start_token_id=tokenizer.pad_token_id, **ids,
        )  # fmt: skip
        model = T5ForConditionalGeneration(config)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def save_rows(rows, path: Path) -> Path:
    from datasets import Dataset

    Dataset.from_list(rows).save_to_disk(str(path))
    return path


def train(family: str, family_args: dict, out: Path, steps: int, lr: float, batch: int, seed: int, **overrides):
    from lamini_lm.train import load_recipe

    lengths = {"max_length": 64} if family == "causal" else {"max_source_length": 16, "max_target_length": 16}
    if family == "seq2seq":
        lengths["predict_with_generate"] = False
    settings = dict(
        family=family,
        output_dir=str(out),
        per_device_train_batch_size=batch,
        max_steps=steps,
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        eval_split_size=0,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=10**6,
        use_cpu=True,
        seed=seed,
        report_to="none",
        disable_tqdm=True,
        **lengths,
        **family_args,
    )
    recipe = load_recipe(**{**settings, **overrides})
    trainer = recipe.build()
    lengths = [len(r["input_ids"]) for r in trainer.train_dataset]
    result = recipe.train()
    tokens = steps * batch * statistics.mean(lengths)
    return recipe, tokens / result.metrics["train_runtime"]


def greedy(family, model, tokenizer, instructions, max_new_tokens=14) -> list[str]:
    import torch

    from lamini_lm.families import get_family

    family = get_family(family)
    tokenizer.padding_side = "left" if family.decoder_only else "right"
    out = []
    model.eval()
    for start in range(0, len(instructions), 32):
        enc = tokenizer([family.wrap(i) for i in instructions[start : start + 32]], return_tensors="pt", padding=True)
        with torch.no_grad():
            gen = model.generate(
                **enc, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id
            )
        new = gen[:, enc["input_ids"].shape[1] :] if family.decoder_only else gen
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        out += [family.response(t) for t in texts]
    tokenizer.padding_side = "right"
    return out


def confidence(family, model, rows, tokenizer) -> float:
    """Mean top-1 probability of the model over the response tokens of ``rows`` (tokenised)."""
    import torch

    from lamini_lm.families import get_family
    from lamini_lm.train.distill import response_logits

    family = get_family(family)
    collate = family.collator(tokenizer)
    probs = []
    with torch.no_grad():
        for start in range(0, len(rows), 32):
            batch = collate([rows[i] for i in range(start, min(start + 32, len(rows)))])
            labels = batch["labels"]
            if family.decoder_only:
                batch = {k: v for k, v in batch.items() if k != "labels"}
            logits, _ = response_logits(model(**batch).logits, labels, family.decoder_only)
            probs += logits.softmax(-1).max(-1).values.tolist()
    return statistics.mean(probs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", default="seq2seq", choices=["seq2seq", "causal"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--held-out", type=int, default=200, help="prompts nobody trains on")
    p.add_argument("--train-prompts", type=int, default=1000, help="prompts each student sees")
    p.add_argument("--steps", type=int, default=2000, help="student steps (both methods)")
    p.add_argument("--lr", type=float, default=3e-3, help="student learning rate (both methods; cosine, 30 warmup)")
    p.add_argument("--teacher-steps", type=int, default=800)
    p.add_argument("--teacher-lr", type=float, default=3e-3)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument(
        "--alphas", type=float, nargs="+", default=None,
        help="the third protocol: one KD student per alpha, the alpha chosen on the validation prompts",
    )  # fmt: skip
    p.add_argument("--validation", type=int, default=200, help="--alphas: prompts that choose alpha (nobody trains)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument(
        "--lmbda", type=float, default=0.0, help="KD arm only: on-policy (GKD) fraction of batches (not the protocol)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is faster on 2 shared cores)")
    p.add_argument("--top-k", type=int, nargs="+", default=[8, 20, 50], help="teacher-logits storage to measure")
    p.add_argument("--out-json", default=None)
    args = p.parse_args(argv)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import torch
    import transformers

    from lamini_lm.testing import build_tiny_tokenizer
    from lamini_lm.train.data import tokenize_dataset
    from lamini_lm.train.distill import heldout_divergence

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    print_machine()
    fam = args.family
    shape = "GPT-2" if fam == "causal" else "T5"
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench-kd-"))
    tokenizer = build_tiny_tokenizer(tmp / "tok", vocab_size=1024)  # the toy corpus: letters stay single tokens
    held_prompts, pool = split_prompts(0, args.held_out)
    held = task_rows(held_prompts)

    # 1. the teacher, trained on the true answers of the students' pool (never on the held-out prompts)
    rng = random.Random(1000)
    teacher_prompts = rng.sample(pool, args.teacher_steps * 32)  # each seen once
    teacher_rows = task_rows(teacher_prompts)
    teacher_path = build(fam, tokenizer, tmp / "teacher-init", width=64, layers=2, seed=1234)
    t0 = time.perf_counter()
    teacher_recipe, _ = train(
        fam,
        {"model_name_or_path": str(teacher_path), "dataset_name": str(save_rows(teacher_rows, tmp / "teacher-data"))},
        tmp / "teacher", args.teacher_steps, args.teacher_lr, 32, 1234, lr_scheduler_type="cosine", warmup_steps=30,
    )  # fmt: skip
    teacher_s = time.perf_counter() - t0
    teacher = teacher_recipe.trainer.model.eval()
    held_ins = [r["instruction"] for r in held]
    t_answers = greedy(fam, teacher, tokenizer, held_ins)
    t_acc = statistics.mean(a == r["response"] for a, r in zip(t_answers, held))
    cfg = teacher_recipe.config
    held_teacher_rows = tokenize_dataset(
        datasets.Dataset.from_list([{"instruction": i, "response": a} for i, a in zip(held_ins, t_answers)]),
        tokenizer, fam, cfg,
    )  # fmt: skip
    t_conf = confidence(fam, teacher, held_teacher_rows, tokenizer)
    print(
        f"teacher ({fam}): {shape} 64 wide x 2 layers, {sum(p.numel() for p in teacher.parameters()):,} parameters, "
        f"{args.teacher_steps} steps x batch 32 (lr {args.teacher_lr}, cosine) on the true answers of "
        f"{len(teacher_rows)} prompts in {teacher_s:.0f} s; on {len(held)} held-out prompts: exact-match accuracy "
        f"{t_acc:.3f}, mean top-1 probability on its answers {t_conf:.3f}"
    )

    def teacher_answered(instructions):  # tokenised rows of the teacher's greedy answers: where KL is measured
        answers = greedy(fam, teacher, tokenizer, instructions)
        rows = [{"instruction": i, "response": a} for i, a in zip(instructions, answers)]
        return tokenize_dataset(datasets.Dataset.from_list(rows), tokenizer, fam, cfg)

    samples = {seed: random.Random(100 + seed).sample(pool, args.train_prompts) for seed in args.seeds}
    arms = ["sft"] + ([f"kd@{a:g}" for a in args.alphas] if args.alphas else ["kd"])
    if args.alphas:  # validation prompts: out of the held-out set, the teacher's data and every student's data
        seen = set(teacher_prompts).union(*samples.values())
        val = task_rows(random.Random(7).sample([q for q in pool if q not in seen], args.validation))
        val_ins = [r["instruction"] for r in val]
        val_teacher_rows = teacher_answered(val_ins)
        validation = {arm: [] for arm in arms}

    # 2. students: the same prompts, the teacher's greedy answers, equal steps
    results = {arm: [] for arm in arms}
    speed = {arm: [] for arm in arms}
    for seed in args.seeds:
        prompts = [r["instruction"] for r in task_rows(samples[seed])]
        answers = greedy(fam, teacher, tokenizer, prompts)
        data = save_rows([{"instruction": i, "response": a} for i, a in zip(prompts, answers)], tmp / f"d{seed}")
        for method in arms:
            init = build(fam, tokenizer, tmp / f"s{seed}-{method}-init", width=32, layers=2, seed=seed)
            extra = {"model_name_or_path": str(init), "dataset_name": str(data)}
            if method != "sft":
                extra.update(
                    teacher_model_name_or_path=str(tmp / "teacher"),
                    alpha=float(method[3:]) if args.alphas else args.alpha,
                    temperature=args.temperature,
                    teacher_batch_size=16,
                    lmbda=args.lmbda,
                    on_policy_max_new_tokens=16,  # the task's answers are at most 11 tokens
                )
            recipe, tps = train(
                fam, extra, tmp / f"s{seed}-{method}", args.steps, args.lr, 16, seed,
                lr_scheduler_type="cosine", warmup_steps=30,
            )  # fmt: skip
            student = recipe.trainer.model.eval()
            kl = heldout_divergence(student, teacher, held_teacher_rows, fam, tokenizer)
            s_answers = greedy(fam, student, tokenizer, held_ins)
            acc = statistics.mean(a == r["response"] for a, r in zip(s_answers, held))
            results[method].append({"seed": seed, "kl": kl, "accuracy": acc})
            speed[method].append(tps)
            chosen_on = ""
            if args.alphas:
                v_kl = heldout_divergence(student, teacher, val_teacher_rows, fam, tokenizer)
                v_acc = statistics.mean(
                    a == r["response"] for a, r in zip(greedy(fam, student, tokenizer, val_ins), val)
                )
                validation[method].append({"seed": seed, "kl": v_kl, "accuracy": v_acc})
                chosen_on = f"; validation KL {v_kl:.4f}, accuracy {v_acc:.3f}"
            print(
                f"seed {seed} {method:>3}: held-out KL(teacher||student) {kl:.4f}, accuracy {acc:.3f}, "
                f"{tps:,.0f} tok/s{chosen_on}"
            )

    if args.alphas:  # the declared rule: KL <= 0.8x SFT's on validation, then the best validation accuracy
        v_med = {
            m: {k: statistics.median(r[k] for r in rs) for k in ("kl", "accuracy")} for m, rs in validation.items()
        }
        h_med = {m: {k: statistics.median(r[k] for r in rs) for k in ("kl", "accuracy")} for m, rs in results.items()}
        print(f"\nvalidation ({args.validation} prompts) and held-out medians per arm:")
        print("| arm | validation KL | validation accuracy | held-out KL | held-out accuracy |")
        print("| --- | --- | --- | --- | --- |")
        for m in arms:
            print(
                f"| {m} | {v_med[m]['kl']:.4f} | {v_med[m]['accuracy']:.3f} | {h_med[m]['kl']:.4f} | "
                f"{h_med[m]['accuracy']:.3f} |"
            )
        kd_arms = arms[1:]
        eligible = [m for m in kd_arms if v_med[m]["kl"] <= 0.8 * v_med["sft"]["kl"]]
        if eligible:  # ties: the smaller alpha (more distillation)
            best = max(eligible, key=lambda m: (v_med[m]["accuracy"], -float(m[3:])))
        else:
            best = min(kd_arms, key=lambda m: v_med[m]["kl"])
        print(f"chosen on validation: {best} (eligible by KL: {', '.join(eligible) or 'none'})")
        args.alpha = float(best[3:])
        results["kd"], speed["kd"] = results[best], speed[best]
        results = {"sft": results["sft"], "kd": results["kd"]}
        speed = {"sft": speed["sft"], "kd": speed["kd"]}

    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("kl", "accuracy")} for m, rs in results.items()}
    tps = {m: statistics.median(v) for m, v in speed.items()}
    n_students = sum(p.numel() for p in student.parameters())
    print(
        f"\nstudents: {shape} 32 wide x 2 layers ({n_students:,} parameters), {args.train_prompts} prompts, "
        f"{args.steps} steps x batch 16, lr {args.lr} cosine; KD alpha {args.alpha}, temperature "
        f"{args.temperature}, forward KL" + (f", on-policy lmbda {args.lmbda}" if args.lmbda else "")
    )
    print(f"held out: {args.held_out} prompts; median of seeds {args.seeds}")
    print("| method | KL(teacher || student) per token | task accuracy | train tokens/s |")
    print("| --- | --- | --- | --- |")
    for m, label in (("sft", "SFT on teacher greedy outputs"), ("kd", "token-level KD")):
        print(f"| {label} | {med[m]['kl']:.4f} | {med[m]['accuracy']:.3f} | {tps[m]:,.0f} |")
    if len(args.seeds) > 3:  # the three seeds, beside the verdict on all of them
        first = {
            m: {k: statistics.median(r[k] for r in rs[:3]) for k in ("kl", "accuracy")} for m, rs in results.items()
        }
        print(
            f"seeds {args.seeds[:3]} alone: KL {first['sft']['kl']:.4f} (SFT) / {first['kd']['kl']:.4f} (KD), ratio "
            f"{first['kd']['kl'] / first['sft']['kl']:.2f}; accuracy {first['sft']['accuracy']:.3f} / "
            f"{first['kd']['accuracy']:.3f}"
        )
    pairs = list(zip(results["sft"], results["kd"]))
    print(
        f"paired by seed: KD's KL lower in {sum(k['kl'] < s['kl'] for s, k in pairs)} of {len(pairs)}, its accuracy "
        f"higher in {sum(k['accuracy'] > s['accuracy'] for s, k in pairs)}, equal in "
        f"{sum(k['accuracy'] == s['accuracy'] for s, k in pairs)}"
    )
    ratio = med["kd"]["kl"] / med["sft"]["kl"]
    gain = med["kd"]["accuracy"] - med["sft"]["accuracy"]
    print(
        f"KD/SFT: KL ratio {ratio:.2f} (target <= 0.8), accuracy {gain:+.3f}, "
        f"throughput {tps['kd'] / tps['sft']:.2f}x (teacher forward on the same CPU)"
    )
    # 3. offline teacher logits: storage per response token (lamini-lm teacher-logits on the students' data)
    from lamini_lm.train.distill import distill_config_cls
    from lamini_lm.train.teacher_logits import TeacherLogitsArguments, run_teacher_logits

    kd_cfg = dict(teacher_recipe.config.to_dict())
    storage = {}
    for k in args.top_k:
        cfg = distill_config_cls(fam)(
            model_name_or_path=str(tmp / "teacher"),
            teacher_model_name_or_path=str(tmp / "teacher"),
            dataset_name=str(data),
            output_dir=str(tmp / "unused"),
            use_cpu=True,
            eval_split_size=0,
            **{key: kd_cfg[key] for key in ("max_length", "max_source_length", "max_target_length") if key in kd_cfg},
        )
        out = run_teacher_logits(cfg, TeacherLogitsArguments(output=str(tmp / f"logits-k{k}"), top_k=k))
        from lamini_lm.artifacts import read_manifest

        extra = read_manifest(out).extra
        storage[k] = extra["bytes_per_position"]
        print(
            f"teacher-logits top-{k}: {extra['response_tokens']} response tokens, {extra['bytes_per_position']} bytes "
            f"per token on disk (int32 ids + float16 log-probs = {6 * k} bytes of payload)"
        )
    load = os.getloadavg()
    print(f"# load average at end: {load[0]:.2f} (1 min); wall {time.perf_counter() - started:.0f} s")
    if args.out_json:
        Path(args.out_json).write_text(
            json.dumps(
                {"results": results, "median": med, "tokens_per_s": tps, "bytes_per_position": storage}, indent=2
            )
        )
    return 0 if ratio <= 0.8 and med["kd"]["accuracy"] >= med["sft"]["accuracy"] else 1


if __name__ == "__main__":
    sys.exit(main())
