"""Peak memory of token-level distillation (KD) with a teacher ~10x the student, against SFT of the student alone.

The question (issue #17): does a teacher about 10x the student train where SFT of the student fitted? The teacher
runs in micro-batches of ``teacher_batch_size`` rows without gradients, but the loss then works on fp32
``[response tokens, vocab]`` tensors, which with a real vocabulary may be what no longer fits.

The protocol:

* Per family, a student and a teacher built from config with a REAL-size vocabulary (GPT-2's 50,257 for the
  causal family, T5's 32,128 for seq2seq). The tokenizer is trained on the fly (``build_tiny_tokenizer``, 1,024
  tokens: the toy corpus cannot reach 50K merges), and the models' ``vocab_size`` is padded up to the real size:
  the logits, the loss's tensors and the embeddings have the real width, the padding rows are never a label.
  Causal: GPT-2 shape, student 128 wide x 2 layers, teacher 768 wide x 4; seq2seq: T5 shape, student 128 wide x 2+2
  layers, teacher 704 wide x 2+2 (the printed parameter ratios: 9.8x, 10.0x).
* The same rows (synthetic, long enough that every row fills its length), batch and lengths for every arm: batch 8;
  causal ``max_length`` 128 (about half of it response); seq2seq source 128, target 64. fp32, AdamW, CPU, one torch
  thread, ``--steps`` (3) optimizer steps through the library's recipes (``lamini_lm.train.load_recipe``): what is
  measured is what ``lamini-lm train`` runs.
* Arms: SFT of the student alone; KD (forward KL, alpha 0.5) with the live teacher at ``teacher_batch_size`` 1 and
  = the batch. Each arm runs in a fresh child process, so each peak is its own.
* Two figures per arm, both printed:
  - **tensor peak**: the most bytes of CPU tensors alive at once that torch allocated during ``train()``
    (activations, logits, the loss's temporaries, gradients, AdamW state), tracked by a ``TorchDispatchMode`` that
    counts each new storage until it is freed. Weights and the loaded batch are not in it. This is the figure that
    carries over to a GPU (as ``torch.cuda.max_memory_allocated`` minus the weights), up to the GPU's dtype (bf16
    halves activations there) and its allocator's rounding.
  - **RSS**: the child's peak resident memory during ``train()`` (``VmRSS``, polled every 10 ms; it counts the
    teacher's weights, which safetensors maps from the file and RssAnon would miss), the same after ``build()``,
    and the peak minus the weights' bytes (student and teacher). RSS includes the interpreter and torch's
    libraries (the same in every arm), allocator slack and freed-but-kept pages: the CPU machine's answer, not a
    GPU's.
* Printed beside them: the weights' bytes (student; teacher), the response tokens per batch N, and the size of one
  fp32 ``[N, vocab]`` tensor, so the KD-over-SFT gap reads in units of those tensors.

Usage:
    python benchmarks/bench_distillation_memory.py                    # both families, ~5 minutes on one core
    python benchmarks/bench_distillation_memory.py --family causal --steps 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import print_machine  # noqa: E402

REAL_VOCAB = {"causal": 50_257, "seq2seq": 32_128}  # GPT-2's vocabulary; T5's padded one
SHAPES = {  # (student, teacher): width, layers (seq2seq: per stack), feed-forward
    "causal": ({"width": 128, "layers": 2}, {"width": 768, "layers": 4}),
    "seq2seq": ({"width": 128, "layers": 2}, {"width": 704, "layers": 2}),
}
LENGTHS = {"causal": {"max_length": 128}, "seq2seq": {"max_source_length": 128, "max_target_length": 64}}
BATCH = 8
MIB = 2**20


def build(family: str, tokenizer, path: Path, width: int, layers: int, vocab: int, seed: int = 0):
    """A fresh model of ``family`` from config, ``vocab`` wide (padded past the tokenizer's tokens)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    ids = dict(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    heads = max(2, width // 64)
    if family == "causal":
        config = GPT2Config(
            vocab_size=vocab, n_positions=256, n_embd=width, n_layer=layers, n_head=heads, n_inner=4 * width,
            bos_token_id=tokenizer.bos_token_id, **ids,
        )  # fmt: skip
        model = GPT2LMHeadModel(config)
    else:
        config = T5Config(
            vocab_size=vocab, d_model=width, d_ff=4 * width, d_kv=width // heads, num_layers=layers,
            num_heads=heads, decoder_start_token_id=tokenizer.pad_token_id, **ids,
        )  # fmt: skip
        model = T5ForConditionalGeneration(config)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return sum(p.numel() for p in model.parameters())


def rows(n: int) -> list[dict[str, str]]:
    """Rows long enough to fill every length: a ~60-token instruction and a response far past 128 tokens."""
    words = "the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches".split()
    out = []
    for i in range(n):
        ins = " ".join(words[(i + j) % len(words)] for j in range(30))
        resp = " ".join(words[(3 * i + j) % len(words)] for j in range(200))
        out.append({"instruction": f"Row {i}: repeat after me. {ins}", "response": resp})
    return out


# --- the child: one arm, one process ----------------------------------------------------------------------------


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith(key + ":"))


def _tracker():
    """A TorchDispatchMode counting the bytes of CPU storages created under it until they are freed."""
    import weakref

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Tracker(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live: dict[int, list[int]] = {}  # storage pointer -> [tensors alive on it, bytes]
            self.now = self.peak = 0

        def _free(self, key):
            entry = self.live[key]
            entry[0] -= 1
            if entry[0] == 0:
                del self.live[key]
                self.now -= entry[1]

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            inputs = {
                t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)
            }
            for t in tree_flatten(out)[0]:
                if not isinstance(t, torch.Tensor) or t.device.type != "cpu":
                    continue
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key == 0:
                    continue
                if key in self.live:  # a view or in-place result of a tracked storage
                    self.live[key][0] += 1
                elif key in inputs:  # a view of memory that existed before (weights, the batch): not counted
                    continue
                else:
                    self.live[key] = [1, storage.nbytes()]
                    self.now += storage.nbytes()
                    self.peak = max(self.peak, self.now)
                weakref.finalize(t, self._free, key)
            return out

    return Tracker()


def child(spec: dict) -> dict:
    import threading

    import datasets
    import torch
    import transformers

    from lamini_lm.families import IGNORE_INDEX
    from lamini_lm.train import load_recipe

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    recipe = load_recipe(**spec["settings"])
    trainer = recipe.build()
    student_bytes = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    teacher = getattr(trainer, "teacher", None)
    teacher_bytes = sum(p.numel() * p.element_size() for p in teacher.parameters()) if teacher is not None else 0
    shift = recipe.family.decoder_only
    tokens = [sum(x != IGNORE_INDEX for x in r["labels"][1 if shift else 0 :]) for r in trainer.train_dataset]
    after_build = _status("VmRSS")
    peak = [after_build]
    done = threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], _status("VmRSS"))
            time.sleep(0.01)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    tracker = _tracker()
    started, cpu = time.perf_counter(), time.process_time()
    with tracker:
        recipe.train()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    done.set()
    thread.join()
    peak[0] = max(peak[0], _status("VmRSS"))
    return {
        "student_bytes": student_bytes,
        "teacher_bytes": teacher_bytes,
        "response_tokens_per_row": sum(tokens) / len(tokens),
        "rss_after_build": after_build,
        "rss_peak": peak[0],
        "tensor_peak": tracker.peak,
        "wall_s": wall,
        "cpu_s": cpu,
    }


def run_child(spec: dict) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed:\n{proc.stderr[-4000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


# --- the parent -------------------------------------------------------------------------------------------------


def measure_family(family: str, steps: int, tmp: Path, tokenizer, data: Path) -> None:
    vocab = REAL_VOCAB[family]
    student_shape, teacher_shape = SHAPES[family]
    n_student = build(family, tokenizer, tmp / f"{family}-student", vocab=vocab, **student_shape)
    n_teacher = build(family, tokenizer, tmp / f"{family}-teacher", vocab=vocab, **teacher_shape)
    shape = "GPT-2" if family == "causal" else "T5"
    print(
        f"\n## {family}: {shape} shape, vocab_size {vocab:,} (tokenizer {len(tokenizer):,} tokens, padded up); "
        f"student {student_shape['width']} wide x {student_shape['layers']} layers, {n_student:,} parameters; "
        f"teacher {teacher_shape['width']} wide x {teacher_shape['layers']} layers, {n_teacher:,} parameters "
        f"({n_teacher / n_student:.1f}x); batch {BATCH}, {LENGTHS[family]}, {steps} steps, fp32, AdamW"
    )
    base = dict(
        family=family,
        model_name_or_path=str(tmp / f"{family}-student"),
        dataset_name=str(data),
        per_device_train_batch_size=BATCH,
        max_steps=steps,
        learning_rate=1e-4,
        eval_split_size=0,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=10**6,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
        **LENGTHS[family],
    )
    if family == "seq2seq":
        base["predict_with_generate"] = False
    kd = dict(teacher_model_name_or_path=str(tmp / f"{family}-teacher"), alpha=0.5)
    arms = {
        "SFT (student alone)": {},
        "KD, teacher_batch_size 1": {**kd, "teacher_batch_size": 1},
        f"KD, teacher_batch_size {BATCH}": {**kd, "teacher_batch_size": BATCH},
    }
    results = {}
    print("| arm | tensor peak MiB | RSS after build MiB | RSS peak MiB | RSS peak - weights MiB | wall s | cpu s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for i, (name, extra) in enumerate(arms.items()):
        out = tmp / f"{family}-run{i}"
        r = run_child({"settings": {**base, **extra, "output_dir": str(out)}})
        results[name] = r
        print(
            f"| {name} | {r['tensor_peak'] / MIB:,.1f} | {r['rss_after_build'] / MIB:,.1f} | "
            f"{r['rss_peak'] / MIB:,.1f} | {(r['rss_peak'] - r['student_bytes'] - r['teacher_bytes']) / MIB:,.1f} | "
            f"{r['wall_s']:.1f} | {r['cpu_s']:.1f} |"
        )
    sft = results["SFT (student alone)"]
    n_tokens = sft["response_tokens_per_row"] * BATCH
    one = n_tokens * vocab * 4
    length = LENGTHS[family].get("max_length") or LENGTHS[family]["max_target_length"]
    print(
        f"weights: student {sft['student_bytes'] / MIB:,.1f} MiB, teacher "
        f"{next(r['teacher_bytes'] for r in results.values() if r['teacher_bytes']) / MIB:,.1f} MiB (fp32); "
        f"response tokens per batch N = {n_tokens:.0f}; one fp32 [N, vocab] tensor = {one / MIB:,.1f} MiB; "
        f"student logits [batch, length, vocab] fp32 = "
        f"{BATCH * length * vocab * 4 / MIB:,.1f} MiB"
    )
    for name, r in results.items():
        if r is sft:
            continue
        total = r["rss_peak"]
        print(
            f"{name}: tensor peak {r['tensor_peak'] / sft['tensor_peak']:.2f}x SFT's "
            f"(+{(r['tensor_peak'] - sft['tensor_peak']) / MIB:,.1f} MiB = "
            f"{(r['tensor_peak'] - sft['tensor_peak']) / one:.1f} [N, vocab] fp32 tensors); "
            f"RSS peak {total / sft['rss_peak']:.2f}x SFT's ({total / MIB:,.1f} against {sft['rss_peak'] / MIB:,.1f} "
            f"MiB), of which the teacher's weights {r['teacher_bytes'] / MIB:,.1f} MiB"
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", nargs="+", default=["causal", "seq2seq"], choices=["causal", "seq2seq"])
    p.add_argument("--steps", type=int, default=3, help="optimizer steps per arm (AdamW state exists from step 2)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))))
        return 0

    import datasets
    import transformers

    from lamini_lm.testing import build_tiny_tokenizer

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    print_machine()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-kd-mem-") as tmp_name:
        tmp = Path(tmp_name)
        tokenizer = build_tiny_tokenizer(tmp / "tok", vocab_size=1024)
        data = tmp / "rows"
        datasets.Dataset.from_list(rows(BATCH * args.steps)).save_to_disk(str(data))
        for family in args.family:
            measure_family(family, args.steps, tmp, tokenizer, data)
    load = os.getloadavg()
    print(f"# load average at end: {load[0]:.2f} (1 min); wall {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
