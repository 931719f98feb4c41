"""Tiny students really train: loss falls on a repeated batch, parameters change, LoRA merges, runs resume."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from lamini_lm.train import load_recipe

ROWS = [
    {"instruction": "Name a fruit that is red.", "response": "An apple is red."},
    {"instruction": "What colour is the sky?", "response": "The sky is blue."},
    {"instruction": "Give a word for happy.", "response": "Glad."},
    {"instruction": "How many legs does a cat have?", "response": "A cat has four legs."},
]


@pytest.fixture
def data_dir(tmp_path):
    """A saved dataset (Dataset.save_to_disk) of 8 rows: with batch size 8 every step sees the same batch."""
    from datasets import Dataset

    path = tmp_path / "data"
    Dataset.from_list(ROWS * 2).save_to_disk(str(path))
    return path


def tiny_args(model, data, out, **kw):
    args = dict(
        model_name_or_path=str(model),
        dataset_name=str(data),
        output_dir=str(out),
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        gradient_accumulation_steps=1,
        eval_split_size=0,
        max_steps=10,
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
    args.update(kw)
    return args


def assert_trained(recipe, before):
    losses = [h["loss"] for h in recipe.trainer.state.log_history if "loss" in h]
    assert len(losses) >= 5 and losses[-1] < losses[0] * 0.8, losses
    after = recipe.trainer.model.state_dict()
    for name, param in before.items():
        if param.dtype.is_floating_point and param.numel() > 1 and "lora" not in name:
            assert not torch.equal(param, after[name].cpu()), f"Parameter {name} has not changed"


@pytest.mark.parametrize("family,fixture", [("seq2seq", "tiny_t5"), ("causal", "tiny_gpt2")])
def test_student_trains_loss_falls_params_change(family, fixture, request, data_dir, tmp_path):
    model = shutil.copytree(request.getfixturevalue(fixture), tmp_path / "model")
    recipe = load_recipe(family=family, **tiny_args(model, data_dir, tmp_path / "out"))
    trainer = recipe.build()
    before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    recipe.train()
    assert_trained(recipe, before)
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_seq2seq_evaluates_loss_and_rouge_on_held_out_split(tiny_t5, data_dir, tmp_path):
    model = shutil.copytree(tiny_t5, tmp_path / "model")
    args = tiny_args(model, data_dir, tmp_path / "out", max_steps=2, eval_split_size=2, eval_strategy="steps")
    recipe = load_recipe(family="seq2seq", eval_steps=2, generation_max_length=8, **args)
    recipe.train()
    evals = [h for h in recipe.trainer.state.log_history if "eval_loss" in h]
    assert evals and "eval_rougeL" in evals[-1] and 0.0 <= evals[-1]["eval_rougeL"] <= 1.0
    assert len(recipe.trainer.eval_dataset) == 2 and len(recipe.trainer.train_dataset) == 6


def test_lora_trains_and_merges(tiny_gpt2, data_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    model = shutil.copytree(tiny_gpt2, tmp_path / "model")
    out = tmp_path / "out"
    recipe = load_recipe(
        family="causal",
        use_lora=True,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        **tiny_args(model, data_dir, out, learning_rate=5e-2),
    )
    recipe.train()
    losses = [h["loss"] for h in recipe.trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0], losses
    assert (out / "adapter" / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(model)
    assert not any("lora" in k for k in merged.state_dict())
    changed = [k for k, v in merged.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert changed, "merging the adapter changed no weight"


def test_rerun_resumes_from_last_checkpoint(tiny_gpt2, data_dir, tmp_path):
    from transformers import TrainerCallback

    model = shutil.copytree(tiny_gpt2, tmp_path / "model")
    out = tmp_path / "out"
    first = load_recipe(
        family="causal", **tiny_args(model, data_dir, out, max_steps=2, save_strategy="steps", save_steps=2)
    )
    first.train()
    assert (out / "checkpoint-2").is_dir()

    class CountSteps(TrainerCallback):
        steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            CountSteps.steps += 1

    again = load_recipe(
        family="causal", **tiny_args(model, data_dir, out, max_steps=4, save_strategy="steps", save_steps=2)
    )
    assert again.resume_checkpoint() == str(out / "checkpoint-2")
    again.build().add_callback(CountSteps)
    again.train()
    assert again.trainer.state.global_step == 4 and CountSteps.steps == 2  # only the 2 missing steps ran


def test_cli_train_on_a_tiny_model(tiny_gpt2, tmp_path):
    from lamini_lm.cli import main

    model = shutil.copytree(tiny_gpt2, tmp_path / "model")
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS * 3))
    out = tmp_path / "out"
    argv = ["train", "lamini-gpt-124m", "--model_name_or_path", str(model), "--dataset_name", str(data)]
    argv += ["--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4", "--use_cpu", "true"]
    argv += ["--eval_split_size", "4", "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "no"]
    assert main(argv) == 0
    assert (out / "model.safetensors").exists() and (out / "train_results.json").exists()
    state = json.loads((out / "trainer_state.json").read_text())
    assert any("eval_loss" in h for h in state["log_history"])
    assert main(["train", "no-such-recipe"]) == 2


@pytest.mark.slow
@pytest.mark.integration
def test_killed_cli_run_continues_when_rerun(tiny_gpt2, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    model = shutil.copytree(tiny_gpt2, tmp_path / "model")
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS * 4))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lamini_lm.train.cli", "lamini-gpt-124m", "--model_name_or_path", str(model)]
    cmd += ["--dataset_name", str(data), "--output_dir", str(out), "--max_steps", "400", "--save_strategy", "steps"]
    cmd += ["--save_steps", "5", "--per_device_train_batch_size", "4", "--eval_split_size", "0", "--use_cpu", "true"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint-5").is_dir() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # let the checkpoint finish writing
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert (out / "checkpoint-5").is_dir() and not (out / "model.safetensors").exists()
    cmd[cmd.index("400")] = "12"  # the same run, told to stop soon so the test stays short
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming from" in done.stderr and "checkpoint-" in done.stderr
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 12
