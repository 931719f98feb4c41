"""Packing and token-budget batches: a packed batch trains exactly as its examples one by one, leaks are refused."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from lamini_lm.config import ConfigError
from lamini_lm.errors import UsageError
from lamini_lm.families import IGNORE_INDEX, get_family, lengths
from lamini_lm.train import load_recipe
from lamini_lm.train.packing import (
    DataCollatorForPacking,
    TokenBudgetBatchSampler,
    best_fit_decreasing,
    check_packing,
)

ROWS = [
    ("Name a fruit that is red.", "An apple is red."),
    ("What colour is the sky on a clear day, and why does it look that way?", "The sky is blue: air scatters blue."),
    ("Give a word for happy.", "Glad."),
    ("How many legs does a cat have?", "A cat has four legs, like most mammals that walk on land."),
    ("Say hi.", "Hi!"),
]


def _rows(tokenizer):
    family = get_family("causal")
    return [family.tokenize(tokenizer, i, r, lengths(max_length=64)) for i, r in ROWS]


def _model(path, impl):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=impl)
    model.config.use_cache = False  # as the Trainer sets it (TrainingArguments.use_cache: False)
    return model.train(False)


def test_best_fit_decreasing_fills_rows_and_keeps_every_item():
    sizes = [9, 1, 7, 3, 3, 2, 5, 8, 4]
    bins = best_fit_decreasing(sizes, capacity=10)
    assert sorted(i for b in bins for i in b) == list(range(len(sizes)))
    assert all(sum(sizes[i] for i in b) <= 10 for b in bins)
    assert len(bins) == 5  # 42 tokens in rows of 10: the fewest rows possible
    assert best_fit_decreasing([12, 3], capacity=10) == [[0], [1]]  # too long: a row of its own


def test_packed_rows_restart_positions_and_mask_each_first_label(tiny_gpt2):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    rows = _rows(tokenizer)
    batch = DataCollatorForPacking(tokenizer, max_row_tokens=64)(rows)
    assert set(batch) == {"input_ids", "labels", "position_ids"}  # no attention mask: transformers reads positions
    real = sum(len(r["input_ids"]) for r in rows)
    assert int((batch["labels"] != IGNORE_INDEX).sum()) == sum(
        sum(1 for x in r["labels"][1:] if x != IGNORE_INDEX) for r in rows
    )
    starts = (batch["position_ids"] == 0).sum()
    assert starts >= len(rows) and batch["input_ids"].numel() - real < 64  # one padded tail at most per row
    one = DataCollatorForPacking(tokenizer, one_row=True)(rows)
    assert one["input_ids"].shape == (1, real) and int((one["position_ids"] == 0).sum()) == len(rows)


def _per_example_losses(logits, labels):
    out = []
    for lg, lb in zip(logits, labels):
        lg, lb = lg[:-1], lb[1:]
        keep = lb != IGNORE_INDEX
        out.append(torch.nn.functional.cross_entropy(lg[keep].float(), lb[keep], reduction="sum"))
    return out


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_packed_loss_and_gradient_equal_unpacked(tiny_gpt2, impl):
    """Every example's loss in a packed batch equals its loss alone, and so do the batch loss and its gradient."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    rows = _rows(tokenizer)
    model = _model(tiny_gpt2, impl)
    # unpacked: each example alone (no padding at all), summed token losses
    alone, n_tokens = [], 0
    for r in rows:
        ids, lab = torch.tensor([r["input_ids"]]), torch.tensor([r["labels"]])
        alone.append(_per_example_losses(model(input_ids=ids).logits, lab)[0])
        n_tokens += int((lab[:, 1:] != IGNORE_INDEX).sum())
    loss_alone = torch.stack(alone).sum() / n_tokens
    grads_alone = torch.autograd.grad(loss_alone, list(model.parameters()))

    batch = DataCollatorForPacking(tokenizer, max_row_tokens=48)(rows)
    assert batch["input_ids"].shape[0] > 1  # several rows, some holding several examples
    out = model(**batch)
    flat_logits = out.logits.reshape(-1, out.logits.shape[-1])
    ids, pos = batch["input_ids"].reshape(-1), batch["position_ids"].reshape(-1)
    labels = batch["labels"].reshape(-1)
    packed = {}
    starts = [k for k in range(len(pos)) if pos[k] == 0] + [len(pos)]
    for a, b in zip(starts, starts[1:]):
        if (labels[a:b] != IGNORE_INDEX).any():
            seg = ids[a:b].tolist()
            packed[tuple(seg)] = _per_example_losses(flat_logits[a:b][None], labels[a:b][None])[0]
    for r, loss in zip(rows, alone):
        assert torch.allclose(packed[tuple(r["input_ids"])], loss, rtol=1e-5, atol=1e-5)
    assert torch.allclose(out.loss, loss_alone, rtol=1e-5, atol=1e-6)  # the Trainer's loss: mean over response tokens
    grads_packed = torch.autograd.grad(out.loss, list(model.parameters()))
    for g1, g2 in zip(grads_packed, grads_alone):
        assert torch.allclose(g1, g2, rtol=1e-4, atol=1e-6)
    # and the same rows padded the way the recipe pads them today give the same batch loss
    padded = get_family("causal").collator(tokenizer)(rows)
    assert torch.allclose(model(**padded).loss, loss_alone, rtol=1e-5, atol=1e-6)
    assert check_packing(model) is False  # the probe agrees: examples stay apart, rows of max_length


class _LeakyLM(torch.nn.Module):
    """A decoder that builds its own causal mask and ignores position ids (as some remote-code models do)."""

    def __init__(self):
        super().__init__()
        from types import SimpleNamespace

        self.config = SimpleNamespace(_attn_implementation="sdpa", model_type="leaky")
        self.emb = torch.nn.Embedding(32, 8)
        self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = torch.nn.Linear(8, 32)

    def get_input_embeddings(self):
        return self.emb

    def forward(self, input_ids=None, inputs_embeds=None, position_ids=None, use_cache=False):
        from types import SimpleNamespace

        x = self.emb(input_ids) if inputs_embeds is None else inputs_embeds
        n = x.shape[1]
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
        return SimpleNamespace(logits=self.head(self.attn(x, x, x, attn_mask=mask)[0]))


def test_packing_is_refused_where_examples_would_attend_to_each_other(tiny_gpt2, tiny_t5, tmp_path):
    with pytest.raises(
        UsageError, match=r"--packing: leaky with attn_implementation=sdpa lets packed examples attend"
    ):
        check_packing(_LeakyLM())
    with pytest.raises(UsageError, match=r"--packing: needs --use_cache false"):
        check_packing(_model(tiny_gpt2, "sdpa"), use_cache=True)
    with pytest.raises(ConfigError, match=r"--packing: the seq2seq family \(encoder-decoder\) cannot pack"):
        load_recipe(family="seq2seq", model_name_or_path=str(tiny_t5), output_dir=str(tmp_path), packing=True)
    with pytest.raises(ConfigError, match=r"--packing needs --use_cache false"):
        load_recipe(family="causal", model_name_or_path="m", output_dir=str(tmp_path), packing=True, use_cache=True)
    with pytest.raises(ConfigError, match=r"--max_tokens_per_batch is the budget of --batch_by_tokens"):
        load_recipe(family="seq2seq", model_name_or_path="m", output_dir=str(tmp_path), max_tokens_per_batch=512)


def test_token_budget_batches_cover_every_example_within_budget_and_keep_the_mean_batch():
    import random

    rng = random.Random(0)
    lens = [(rng.randint(3, 120), rng.randint(2, 300)) for _ in range(2000)]
    sampler = TokenBudgetBatchSampler(lens, batch_size=16, seed=1)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(i for b in batches for i in b) == list(range(len(lens)))
        for b in batches:
            cost = len(b) * (max(lens[i][0] for i in b) + max(lens[i][1] for i in b))
            assert cost <= sampler.max_tokens or len(b) == 1
        mean = len(lens) / len(batches)
        assert 15 <= mean <= 17, mean  # calibrated: the paper's 16 examples per batch on average
        assert max(len(b) for b in batches) > 2 * min(len(b) for b in batches)  # short rows share bigger batches
    fixed = TokenBudgetBatchSampler(lens, batch_size=16, max_tokens=2048, seed=1)
    assert fixed.max_tokens == 2048 and not fixed.summary()["budget_calibrated"]
    summary = sampler.summary()
    assert summary["padding_waste"] < 0.5 and summary["examples_per_batch_mean"] == pytest.approx(mean, abs=0.01)


@pytest.fixture
def rows_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"instruction": i, "response": r}) + "\n" for i, r in ROWS * 4))
    return path


def _args(model, data, out, **kw):
    args = dict(
        model_name_or_path=str(model),
        dataset_name=str(data),
        output_dir=str(out),
        per_device_train_batch_size=10,
        eval_split_size=0,
        max_steps=8,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        use_cpu=True,
        seed=0,
        report_to="none",
        disable_tqdm=True,
    )
    return args | kw


def test_causal_recipe_trains_packed_and_records_it(tiny_gpt2, rows_file, tmp_path):
    from lamini_lm.artifacts import read_manifest

    model = shutil.copytree(tiny_gpt2, tmp_path / "model")
    recipe = load_recipe(
        "lamini-gpt-124m",
        **_args(model, rows_file, tmp_path / "out", packing=True, bf16=False, gradient_accumulation_steps=1),
    )
    trainer = recipe.build()
    assert isinstance(trainer.packing_collator, DataCollatorForPacking)
    batch = next(iter(trainer.get_train_dataloader()))
    assert "position_ids" in batch and "attention_mask" not in batch
    recipe.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0] * 0.8, losses
    extra = read_manifest(tmp_path / "out").extra
    assert extra["batching"] == {"packing": True, "batch_by_tokens": False}
    assert extra["effective_batch_size"] == 10  # packing keeps the batch in examples


def test_seq2seq_recipe_trains_by_token_budget_and_reports_the_mean_batch(tiny_t5, rows_file, tmp_path):
    from lamini_lm.artifacts import read_manifest

    model = shutil.copytree(tiny_t5, tmp_path / "model")
    args = _args(model, rows_file, tmp_path / "out", batch_by_tokens=True, per_device_train_batch_size=4)
    recipe = load_recipe("lamini-flan-t5-77m", **args, bf16=False, gradient_accumulation_steps=2)
    recipe.train()
    losses = [h["loss"] for h in recipe.trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0], losses
    batching = read_manifest(tmp_path / "out").extra["batching"]
    assert batching["batch_by_tokens"] and batching["budget_calibrated"]
    assert 3 <= batching["examples_per_batch_mean"] <= 5
    assert batching["effective_batch_size_mean"] == pytest.approx(batching["examples_per_batch_mean"] * 2, abs=0.02)
    assert batching["examples_per_batch_max"] > batching["examples_per_batch_min"]
