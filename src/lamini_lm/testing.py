"""Tiny models built on the spot: a tokenizer trained with ``tokenizers``, a GPT-2 and a T5 from config.

They let the test suite and the offline quickstart run every stage for real with no network: the tiny GPT-2
serves as an OpenAI-compatible teacher through ``transformers serve`` (:func:`serve_teacher`), fitted first if its
answers should parse (:func:`fit_tiny_teacher`: the offline quickstart teaches it ``<example>`` lists), and both
are students that train in seconds on a CPU.

Example:
    >>> from lamini_lm.testing import build_tiny_gpt2
    >>> path = build_tiny_gpt2("/tmp/tiny-gpt2")  # doctest: +SKIP
    >>> from transformers import AutoModelForCausalLM
    >>> AutoModelForCausalLM.from_pretrained(path)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lamini_lm.prompts import ALPACA_WRAPPER, EXAMPLE_GUIDED_TEMPLATE, SYSTEM_MESSAGE, TOPIC_GUIDED_TEMPLATE

__all__ = [
    "CHAT_TEMPLATE",
    "build_tiny_gpt2",
    "build_tiny_t5",
    "build_tiny_tokenizer",
    "fit_tiny_teacher",
    "free_port",
    "serve_teacher",
]

logger = logging.getLogger(__name__)

# A plain chat template (system, user, assistant turns) so `transformers serve` can answer chat requests.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}### Instruction:\n{{ message['content'] }}\n\n"
    "{% else %}### Response:\n{{ message['content'] }}{{ eos_token }}\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}### Response:\n{% endif %}"
)

SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>", "bos_token": "<s>"}

_CORPUS = [
    "What are some things you can do to de-stress?",
    "How can individuals and organizations reduce unconscious bias?",
    "Write a program to compute the sum of integers from k to n.",
    "Try coming up with a creative way to stay motivated during a workout.",
    "In your opinion, what are the qualities of an effective sports coach?",
    "Name three primary colours. Red, yellow and blue are the three primary colours.",
    "Translate the sentence into French. The cat sleeps on the mat.",
    "Summarize the following paragraph in one sentence about the history of the city.",
    "Give me a list of five fruits that are rich in vitamin C, such as oranges and kiwis.",
    "Explain why the sky is blue. Sunlight is scattered by the molecules of the air.",
    "1 2 3 4 5 6 7 8 9 10 100 1000 = + - * / ( ) [ ] { } < > \" ' : ; , . ! ? # _",
    EXAMPLE_GUIDED_TEMPLATE,
    TOPIC_GUIDED_TEMPLATE,
    SYSTEM_MESSAGE,
    ALPACA_WRAPPER,
]


def build_tiny_tokenizer(path: str | os.PathLike, corpus: Iterable[str] | None = None, vocab_size: int = 512):
    """Train a byte-level BPE tokenizer on ``corpus`` and save it, with a chat template, to ``path``.

    Byte-level BPE covers any input text, so the tiny models never meet an unknown character.
    Returns the ``PreTrainedTokenizerFast``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL_TOKENS[k] for k in ("pad_token", "eos_token", "unk_token", "bos_token")],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = list(corpus) if corpus is not None else []
    tok.train_from_iterator(texts + _CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=512, **SPECIAL_TOKENS)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(path))
    return fast


def _save(model, tokenizer, path: Path, max_new_tokens: int) -> Path:
    model.generation_config.max_new_tokens = max_new_tokens
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def build_tiny_gpt2(path: str | os.PathLike, seed: int = 0, max_new_tokens: int = 32, tokenizer=None) -> Path:
    """Save a randomly initialised GPT-2 (~50K parameters) and its tokenizer to ``path``; return ``path``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    path = Path(path)
    tokenizer = tokenizer or build_tiny_tokenizer(path)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=512,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_inner=64,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return _save(GPT2LMHeadModel(config), tokenizer, path, max_new_tokens)


def fit_tiny_teacher(
    path: str | os.PathLike,
    pairs: Sequence[tuple[Sequence[Mapping[str, str]], str]],
    *,
    steps: int = 300,
    batch_size: int = 8,
    lr: float = 1e-2,
    seed: int = 0,
) -> dict[str, float]:
    """Fit the tiny GPT-2 saved at ``path`` (:func:`build_tiny_gpt2`) on chat ``(messages, answer)`` pairs, in place.

    Each pair is rendered with the tokenizer's chat template, as ``transformers serve`` renders a request, and the
    loss covers the answer and its end-of-sequence token only. A plain torch loop (AdamW, ``steps`` steps of
    ``batch_size`` pairs drawn with ``seed``) that takes seconds on a CPU: enough for a ~50K-parameter model to
    learn the shape of its answers (``<example>`` tags, short replies) so that a run against it exercises
    parsing. Deterministic for ``seed``. Returns ``{"first_loss": ..., "last_loss": ..., "steps": ...}``.

    Example:
        >>> path = build_tiny_gpt2("/tmp/tiny-teacher")  # doctest: +SKIP
        >>> fit_tiny_teacher(path, [([{"role": "user", "content": "Say hi."}], "Hi.")], steps=50)  # doctest: +SKIP
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    encoded = []
    for messages, answer in pairs:
        prompt = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        context = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        target = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = (context + target)[-model.config.n_positions :]
        encoded.append((ids, len(ids) - len(target)))
    if not encoded:
        raise ValueError("fit_tiny_teacher needs at least one (messages, answer) pair")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small runs faster on one thread than split over busy cores
    try:
        for _ in range(steps):
            picks = torch.randint(len(encoded), (batch_size,), generator=generator).tolist()
            losses.append(_fit_step(model, optimizer, [encoded[i] for i in picks], tokenizer.pad_token_id))
    finally:
        torch.set_num_threads(threads)
    model.eval()
    model.save_pretrained(str(path))
    return {"first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4), "steps": steps}


def _fit_step(model, optimizer, batch: list[tuple[list[int], int]], pad_id: int) -> float:
    """One AdamW step on ``batch`` (token ids, index where the answer starts); the loss covers the answers."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, start) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, start : len(ids)] = torch.tensor(ids[start:])
        mask[row, : len(ids)] = 1
    loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def build_tiny_t5(path: str | os.PathLike, seed: int = 0, max_new_tokens: int = 32, tokenizer=None) -> Path:
    """Save a randomly initialised T5 (~60K parameters) and its tokenizer to ``path``; return ``path``."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    path = Path(path)
    tokenizer = tokenizer or build_tiny_tokenizer(path)
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_ff=64,
        d_kv=16,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        relative_attention_num_buckets=8,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return _save(T5ForConditionalGeneration(config), tokenizer, path, max_new_tokens)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_teacher(
    model_dir: str | os.PathLike, port: int | None = None, timeout: float = 120.0, log_path: str | None = None
) -> Iterator[str]:
    """Run ``transformers serve`` on ``model_dir`` at 127.0.0.1 and yield its OpenAI base URL (``.../v1``).

    The server is stopped on exit. The request's ``model`` must be ``str(model_dir)``.

    Example:
        >>> with serve_teacher("/tmp/tiny-gpt2") as base_url:  # doctest: +SKIP
        ...     openai.OpenAI(base_url=base_url, api_key="none").chat.completions.create(...)
    """
    port = port or free_port()
    # The `transformers` console script's entry point, run with this interpreter so the same environment serves.
    launcher = "import sys; from transformers.cli.transformers import main; sys.argv[0] = 'transformers'; main()"
    args = ["serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    cmd = [sys.executable, "-c", launcher, *args]
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"`transformers {' '.join(args)}` exited with code {proc.returncode} before it was ready"
                )
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"`transformers serve` did not answer on {base} within {timeout:.0f}s")
            time.sleep(0.25)
        logger.info("teacher %s served at %s/v1", model_dir, base)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log is not subprocess.DEVNULL:
            log.close()


@dataclass
class TinyModelsConfig:
    """Settings of ``lamini-lm toy-models``."""

    output_dir: str = field(
        default=None, metadata={"required": True, "help": "folder to create; gets tokenizer/, gpt2/ and t5/"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the random weights"})
    overwrite: bool = field(default=False, metadata={"help": "replace output_dir even if it holds other files"})


def main(argv: list[str] | None = None, prog: str = "lamini-lm toy-models") -> int:
    """Build the tiny tokenizer, GPT-2 and T5 (random weights, tens of thousands of parameters) under a folder."""
    from lamini_lm.artifacts import Manifest, artifact_output
    from lamini_lm.config import StageParser

    parser = StageParser(
        [TinyModelsConfig],
        prog=prog,
        description=main.__doc__,
        positionals=("output_dir",),
        examples=f"  {prog} tiny/\n  lamini-lm train lamini-gpt-124m --model_name_or_path tiny/gpt2 ...",
    )
    (cfg,) = parser.parse(argv)
    out = Path(cfg.output_dir)
    with artifact_output(out, "toy-models", cfg.overwrite, flag="OUTPUT_DIR") as tmp:
        tokenizer = build_tiny_tokenizer(tmp / "tokenizer")
        for name, build in (("gpt2", build_tiny_gpt2), ("t5", build_tiny_t5)):
            build(tmp / name, seed=cfg.seed, tokenizer=tokenizer)
        Manifest(stage="toy-models", config=cfg).save(tmp)
    for name in ("tokenizer", "gpt2", "t5"):
        print(out / name)
    return 0
