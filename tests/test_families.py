"""One family registry: a third family registered here only trains, answers, evaluates and gets a card.

The toy family is a decoder (the tiny GPT-2's architecture) with its own chat-style wrapper, recognised by a
marker in its config.json. Nothing outside this file knows about it: training, inference, lm-eval and the model
card all ask :mod:`lamini_lm.families`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import lamini_lm
from lamini_lm import families, prompts
from lamini_lm.evaluation import evaluate_model, make_lm
from lamini_lm.evaluation.demo_tasks import write_demo_tasks
from lamini_lm.publishing.model import build_model_card
from lamini_lm.train import load_recipe
from training_kit import tiny_args

TOY_WRAPPER = "<|user|>\n{instruction}\n<|assistant|>\n"
TOY_NOTE = "This is a toy chat student: it expects every instruction inside its user/assistant wrapper."

ROWS = [
    {"instruction": "Name a fruit that is red.", "response": "An apple is red."},
    {"instruction": "What colour is the sky?", "response": "The sky is blue."},
    {"instruction": "Give a word for happy.", "response": "Glad."},
    {"instruction": "How many legs does a cat have?", "response": "A cat has four legs."},
]


def _toy_usage(family, repo_id):
    return f"```python\n# toy chat usage for {repo_id}\nprompt = {family.template!r}.format(instruction=...)\n```"


@pytest.fixture(scope="module")
def toy_family():
    family = families.register_family(
        name="toy",
        auto_model="AutoModelForCausalLM",
        task_type="CAUSAL_LM",
        lm_eval_kwargs={"backend": "causal"},
        pipeline_tag="text-generation",
        description="toy decoder-only",
        template=TOY_WRAPPER,
        decoder_only=True,
        matches=lambda config: getattr(config, "lamini_family", None) == "toy",
        tokenize_fn=families.tokenize_decoder_only,
        usage_fn=_toy_usage,
        card_note=TOY_NOTE,
        recipe_config="lamini_lm.train.config:CausalRecipeConfig",
        recipe_trainer="lamini_lm.train.trainers:CausalRecipeTrainer",
        stop_text="<|user|>",
    )
    yield family
    families.unregister_family("toy")


@pytest.fixture(scope="module")
def toy_base(tiny_gpt2, tmp_path_factory):
    """A copy of the tiny GPT-2 whose config.json carries the toy family's marker."""
    path = shutil.copytree(tiny_gpt2, tmp_path_factory.mktemp("toy") / "base")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "lamini_family": "toy"}))
    return path


@pytest.fixture(scope="module")
def toy_student(toy_family, toy_base, tmp_path_factory):
    """The toy family trained for a few steps with load_recipe(family="toy"); (recipe, output folder)."""
    from datasets import Dataset

    root = tmp_path_factory.mktemp("toy_run")
    Dataset.from_list(ROWS * 2).save_to_disk(str(root / "data"))
    recipe = load_recipe(family="toy", **tiny_args(toy_base, root / "data", root / "out"))
    recipe.train()
    return recipe, root / "out"


def test_builtin_families_and_detection():
    assert families.list_families() == ["causal", "seq2seq"]
    assert families.detect_family({"is_encoder_decoder": True}).name == "seq2seq"
    assert families.detect_family({"model_type": "gpt2"}).name == "causal"
    causal = families.get_family("causal")
    assert causal.wrap("Hi.") == prompts.ALPACA_WRAPPER.format(instruction="Hi.")
    assert causal.prompt_hash == prompts.PROMPT_HASHES["alpaca_wrapper"]
    assert families.get_family("seq2seq").prompt_hash is None
    assert prompts.wrap_instruction("Hi.", causal) == prompts.wrap_instruction("Hi.", "causal")
    with pytest.raises(ValueError, match="already registered"):
        families.register_family(dataclasses.replace(causal))
    with pytest.raises(ValueError, match="unknown model family 'rnn'; known: causal, seq2seq"):
        families.get_family("rnn")
    with pytest.raises(ValueError, match="must contain"):
        dataclasses.replace(causal, name="bad", template="no placeholder")


def test_families_module_imports_no_torch_or_transformers():
    code = "import sys, lamini_lm.families; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_toy_family_is_detected_and_wraps(toy_family, toy_base):
    assert families.detect_family(toy_base) is toy_family  # the marker wins over the catch-all "causal"
    assert prompts.detect_family(toy_base) == "toy"
    assert prompts.wrap_instruction("Hi.", "toy") == "<|user|>\nHi.\n<|assistant|>\n"
    config = json.loads((toy_base / "config.json").read_text())
    assert families.detect_family({k: v for k, v in config.items() if k != "lamini_family"}).name == "causal"


def test_toy_family_trains_on_its_own_wrapper(toy_student):
    recipe, out = toy_student
    assert recipe.family.name == "toy"
    losses = [h["loss"] for h in recipe.trainer.state.log_history if "loss" in h]
    assert len(losses) >= 5 and losses[-1] < losses[0] * 0.8, losses
    # The rows were tokenised with the toy wrapper, and the loss sees the response only.
    tokenizer = recipe.trainer.processing_class
    row = recipe.trainer.train_dataset[0]
    prompt = tokenizer(TOY_WRAPPER.format(instruction=ROWS[0]["instruction"]), add_special_tokens=False)["input_ids"]
    response = tokenizer(ROWS[0]["response"], add_special_tokens=False)["input_ids"]
    assert row["input_ids"] == prompt + response + [tokenizer.eos_token_id]
    assert row["labels"] == [-100] * len(prompt) + response + [tokenizer.eos_token_id]
    assert families.detect_family(out).name == "toy"  # the marker survives save_pretrained


def test_toy_student_answers_with_its_wrapper(toy_student):
    _, out = toy_student
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    seen = []
    handle = model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["input_ids"].clone()), with_kwargs=True
    )
    try:
        got = lamini_lm.generate(model, ["Name a fruit that is red."], tokenizer=tokenizer, max_new_tokens=5)
    finally:
        handle.remove()
    prompt = TOY_WRAPPER.format(instruction="Name a fruit that is red.")
    assert tokenizer.decode(seen[0][0], skip_special_tokens=True) == prompt  # the prompt generate() built
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        manual = model.generate(**ids, max_new_tokens=5, pad_token_id=tokenizer.pad_token_id)
    answer = tokenizer.decode(manual[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert got == [answer.split("<|user|>")[0].strip()]
    assert lamini_lm.generate(str(out), "Name a fruit that is red.", max_new_tokens=5) == got[0]  # from a folder


def test_toy_student_evaluates_with_its_wrapper(toy_student, tmp_path):
    _, out = toy_student
    tasks = write_demo_tasks(tmp_path / "tasks", n=6)
    lm = make_lm(out, batch_size=4, device="cpu")
    assert lm.family == "toy" and lm.backend == "causal"
    seen = []

    def hook(module, args, kwargs):  # the token ids every forward pass receives: what the model really sees
        ids = kwargs.get("input_ids", args[0] if args else None)
        seen.extend(lm.tokenizer.batch_decode(ids, skip_special_tokens=True))

    handle = lm.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        results = evaluate_model(
            lm,
            ["demo_choice", "demo_generate"],
            include_path=tasks,
            include_defaults=False,
            limit=3,
            bootstrap_iters=0,
        )
    finally:
        handle.remove()
    mc = [s for s in seen if "Question: What is" in s]
    gen = [s for s in seen if "Repeat the number" in s]
    assert mc and gen, "both loglikelihood and generation requests reach the model"
    assert all(s.startswith("<|user|>\nQuestion: What is") and "\n<|assistant|>\n" in s for s in mc)
    assert all(s.startswith("<|user|>\nRepeat the number") for s in gen)
    assert not any("### Instruction" in s for s in seen)
    assert results["family"] == "toy" and results["prompt_hash"] == prompts.prompt_hash(TOY_WRAPPER)
    assert set(results["tasks"]) == {"demo_choice", "demo_generate"}


def test_toy_student_gets_its_card(toy_student):
    _, out = toy_student
    card = build_model_card(out, "someone/toy-student")
    assert card.data.pipeline_tag == "text-generation"
    assert "toy" in card.data.tags
    text = str(card)
    assert _toy_usage(families.get_family("toy"), "someone/toy-student") in text
    assert TOY_NOTE in text and "toy decoder-only instruction-following model" in text
    assert "Alpaca" not in text and "### Response" not in text
