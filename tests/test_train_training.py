"""Tiny students really train: loss falls on a repeated batch, parameters change, LoRA merges, runs resume."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from lamini_lm.train import load_recipe
from training_kit import tiny_args

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

    def complete_checkpoints():  # save_total_limit 2 rotates old ones away: any finished checkpoint will do
        return sorted(p for p in out.glob("checkpoint-*") if (p / "trainer_state.json").is_file())

    while not complete_checkpoints() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    kept = complete_checkpoints()
    assert kept and not (out / "model.safetensors").exists()
    killed_at = max(int(p.name.split("-")[1]) for p in kept)
    assert killed_at < 12, "the run was killed too late for the rerun to show a resume"
    cmd[cmd.index("400")] = "12"  # the same run, told to stop soon so the test stays short
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming from" in done.stderr and "checkpoint-" in done.stderr
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 12


def test_training_manifest_records_the_run(tiny_gpt2, tmp_path):
    from lamini_lm.artifacts import MANIFEST_FILE, read_manifest

    model = shutil.copytree(tiny_gpt2, tmp_path / "model")
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS * 3))
    out = tmp_path / "out"
    args = tiny_args(model, data, out, max_steps=3, per_device_train_batch_size=2, gradient_accumulation_steps=3)
    recipe = load_recipe("lamini-gpt-124m", **args, bf16=False, hub_token="hf_abcdefghijklmnop")
    recipe.train()
    manifest = read_manifest(out)
    assert manifest.stage == "train" and manifest.extra["status"] == "complete"
    assert "hf_abcdefghijklmnop" not in (out / MANIFEST_FILE).read_text()
    assert manifest.config["learning_rate"] == 1e-2 and manifest.config["family"] == "causal"
    dataset, base = manifest.input("dataset"), manifest.input("base_model")
    assert dataset["path"] == str(data.resolve()) and dataset["fingerprint"].startswith("sha256:")
    assert base["path"] == str(model.resolve())
    extra = manifest.extra
    assert (extra["recipe"], extra["family"], extra["world_size"]) == ("lamini-gpt-124m", "causal", 1)
    assert extra["effective_batch_size"] == 6 and extra["precision"] == "fp32" and extra["seed"] == 0
    assert extra["base_model"] is None  # a local folder that records no Hub id: none, never a guess
    assert extra["datasets"] == [] and extra["dataset_sources"] == [str(data)]
    assert extra["train_examples"] == 12 and manifest.rows == 12 and extra["steps"] == 3
    assert extra["parameters"] == recipe.trainer.model.num_parameters()
    assert extra["train_loss"] > 0 and extra["hyperparameters"]["effective_batch_size"] == 6
    assert "git_commit" in manifest.to_dict() and not (out / "lamini_lm_run.json").exists()


def test_resume_refuses_another_runs_checkpoints(tiny_gpt2, data_dir, tmp_path):
    from lamini_lm.errors import UsageError

    model = shutil.copytree(tiny_gpt2, tmp_path / "model")
    out = tmp_path / "out"
    load_recipe(
        family="causal", **tiny_args(model, data_dir, out, max_steps=2, save_strategy="steps", save_steps=2)
    ).train()
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:2] * 4))
    again = load_recipe(family="causal", **tiny_args(model, other, out, max_steps=4))
    with pytest.raises(UsageError, match=rf"--output_dir {out}: holds checkpoints of another run \(data ") as err:
        again.train()
    assert "--overwrite_output_dir" in str(err.value) and "--resume_from_checkpoint none" in str(err.value)
    fresh = load_recipe(family="causal", **tiny_args(model, other, out, max_steps=1, resume_from_checkpoint="none"))
    fresh.train()
    assert fresh.trainer.state.global_step == 1  # started over: not the other run's step 2


def test_output_dir_with_a_users_files_is_refused(tiny_gpt2, data_dir, tmp_path):
    from lamini_lm.errors import OutputExistsError

    model = shutil.copytree(tiny_gpt2, tmp_path / "model")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"holds other files \['notes.txt'\].*--overwrite_output_dir"):
        load_recipe(family="causal", **tiny_args(model, data_dir, out, max_steps=1)).train()
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    load_recipe(family="causal", **tiny_args(model, data_dir, out, max_steps=1, overwrite_output_dir=True)).train()
    assert (out / "notes.txt").read_text() == "mine" and (out / "model.safetensors").exists()


def _one_line_error(capsys, argv, code):
    import time

    from lamini_lm.cli import main

    capsys.readouterr()  # what fixtures printed while being built
    start = time.monotonic()
    assert main(argv) == code
    [line] = capsys.readouterr().err.strip().splitlines()
    return line, time.monotonic() - start


def test_missing_broken_and_unreachable_data_are_one_line(tiny_gpt2, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.chdir(tmp_path)
    base = ["train", "lamini-gpt-124m", "--model_name_or_path", str(tiny_gpt2), "--output_dir", str(tmp_path / "o")]
    base += ["--bf16", "false"]  # no "bf16 asked for but no GPU" notice: the error is the only line
    line, seconds = _one_line_error(capsys, [*base, "--dataset_name", "nope.jsonl"], 2)
    assert line == "lamini-lm train: error: --dataset_name nope.jsonl: not found (no such file or folder)"
    assert seconds < 10
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(ROWS[0]) + "\n" + '{"instruction": "x", "response": \n')
    line, _ = _one_line_error(capsys, [*base, "--dataset_name", str(broken)], 1)
    assert line.startswith(f"lamini-lm train: error: {broken}, line 2: not valid JSON")
    # Online but no network (a closed port): a Hub id fails within seconds and names the local alternative.
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    line, seconds = _one_line_error(capsys, [*base, "--dataset_name", "someone/instructions"], 1)
    assert line.startswith("lamini-lm train: error: --dataset_name someone/instructions: the Hub (http://127.0.0.1:9)")
    assert "cannot be reached" in line and "a local .jsonl" in line and "HF_HUB_OFFLINE=1" in line
    assert seconds < 10
    assert not (tmp_path / "o").exists()


@pytest.mark.integration
def test_ctrl_c_saves_a_checkpoint_and_the_rerun_continues(tiny_gpt2, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    model = shutil.copytree(tiny_gpt2, tmp_path / "model")
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS * 4))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lamini_lm.cli", "train", "lamini-gpt-124m", "--model_name_or_path", str(model)]
    cmd += ["--dataset_name", str(data), "--output_dir", str(out), "--max_steps", "100000", "--save_strategy", "no"]
    cmd += ["--per_device_train_batch_size", "4", "--eval_split_size", "0", "--use_cpu", "true"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "lamini_lm.json").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)  # the "running" manifest is written just before the first step
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    [checkpoint] = list(out.glob("checkpoint-*"))
    step = int(checkpoint.name.split("-")[1])
    assert (checkpoint / "trainer_state.json").is_file() and (checkpoint / "optimizer.pt").is_file()
    assert f"checkpoint saved in {checkpoint}" in stderr and "Run the same command again" in stderr
    assert "Traceback" not in stderr and not (out / "model.safetensors").exists()
    cmd[cmd.index("100000")] = str(step + 2)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming from {checkpoint}" in done.stderr
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == step + 2


def _two_process_command(family_recipe, model, data, out, max_steps, extra=()):
    """The documented multi-process command (recipes/README.md, docs/training.md), on CPU with gloo."""
    import sys

    # accelerate launch --cpu runs one process; --multi_gpu on a machine without GPUs runs DDP over gloo on CPU
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    accelerate += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *extra]
    cmd = [*accelerate, "-m", "lamini_lm.train.cli", family_recipe, "--model_name_or_path", str(model)]
    cmd += ["--dataset_name", str(data), "--output_dir", str(out), "--max_steps", str(max_steps)]
    cmd += ["--eval_split_size", "0", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "3"]
    cmd += ["--save_strategy", "steps", "--save_steps", "3", "--logging_steps", "1", "--learning_rate", "1e-2"]
    cmd += ["--lr_scheduler_type", "constant", "--eval_strategy", "no", "--use_cpu", "true", "--report_to", "none"]
    cmd += ["--bf16", "false"]
    return cmd


@pytest.mark.integration
@pytest.mark.parametrize(("recipe", "fixture"), [("lamini-flan-t5-77m", "tiny_t5"), ("lamini-gpt-124m", "tiny_gpt2")])
def test_two_process_run_records_world_size_and_effective_batch(recipe, fixture, request, tmp_path):
    """``accelerate launch --multi_gpu --num_processes 2`` (DDP over gloo on CPU) for each family: the loss falls,
    a checkpoint is written, the rerun resumes it, and the manifest records world size 2 and the effective batch."""
    import os
    import subprocess

    from lamini_lm.artifacts import read_manifest

    model = shutil.copytree(request.getfixturevalue(fixture), tmp_path / "model")
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS * 4))
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(
        _two_process_command(recipe, model, data, out, 3), capture_output=True, text=True, timeout=300, env=env
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert (out / "checkpoint-3" / "trainer_state.json").is_file()
    again = subprocess.run(
        _two_process_command(recipe, model, data, out, 6), capture_output=True, text=True, timeout=300, env=env
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from {out / 'checkpoint-3'}" in again.stderr
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert state["global_step"] == 6 and len(losses) == 6 and losses[-1] < losses[0], losses
    manifest = read_manifest(out)
    assert manifest.extra["world_size"] == 2
    assert manifest.extra["effective_batch_size"] == 2 * 2 * 3
    assert manifest.extra["steps"] == 6 and manifest.extra["status"] == "complete"
