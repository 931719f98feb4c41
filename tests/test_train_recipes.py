"""Every shipped recipe parses into its family's config without touching the Hub, with the paper's settings."""

from __future__ import annotations

import re

import pytest

from lamini_lm.config import ConfigError, load_yaml
from lamini_lm.recipes import list_recipes, recipe_path
from lamini_lm.train import CausalRecipeConfig, Seq2SeqRecipeConfig, get_family, list_families, load_recipe

SEQ2SEQ_BASES = {
    "t5-small",
    "t5-base",
    "t5-large",
    "google/flan-t5-small",
    "google/flan-t5-base",
    "google/flan-t5-large",
}


CHAT_RECIPES = ("lamini-gpt-124m-chat", "lamini-flan-t5-77m-chat")  # multi-turn students (issue 16), not the paper's
KD_RECIPES = ("lamini-flan-t5-77m-kd", "lamini-gpt-124m-kd")  # token-level distillation (issue 17)
PAPER_RECIPES = [n for n in list_recipes() if n not in CHAT_RECIPES + KD_RECIPES]


def test_sixteen_recipes_and_the_dialogue_and_distillation_variants_ship():
    names = PAPER_RECIPES
    assert len(names) == 16 and "lamini-llama-7b" in names and "lamini-flan-t5-248m" in names
    assert set(CHAT_RECIPES) | set(KD_RECIPES) <= set(list_recipes()) and len(list_recipes()) == 20
    kd = {n: load_recipe(n).config for n in KD_RECIPES}
    assert {n: c.teacher_model_name_or_path for n, c in kd.items()} == {
        "lamini-flan-t5-77m-kd": "google/flan-t5-xl",
        "lamini-gpt-124m-kd": "gpt2-xl",
    }
    assert {type(c).__name__ for c in kd.values()} == {"Seq2SeqDistillConfig", "CausalDistillConfig"}


@pytest.mark.parametrize("name", CHAT_RECIPES)
def test_chat_recipes_train_on_the_dialogues_config_with_the_paper_settings(name):
    cfg = load_recipe(name).config
    assert (cfg.dataset_name, cfg.dataset_config_name) == ("lamini_lm/instructions", "dialogues")
    assert cfg.num_train_epochs == 5 and cfg.lr_scheduler_type.value == "linear"
    assert cfg.learning_rate == (5e-4 if isinstance(cfg, Seq2SeqRecipeConfig) else 2e-5)


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_recipe_parses_with_paper_hyperparameters(name):
    raw = load_yaml(recipe_path(name))
    assert raw["family"] in list_families()
    recipe = load_recipe(name)
    cfg = recipe.config
    assert isinstance(cfg, get_family(raw["family"]).config_cls)
    assert cfg.num_train_epochs == 5 and cfg.lr_scheduler_type.value == "linear"
    assert cfg.dataset_name == "MBZUAI/LaMini-instruction"
    if raw["family"] == "seq2seq":
        assert isinstance(cfg, Seq2SeqRecipeConfig) and cfg.model_name_or_path in SEQ2SEQ_BASES
        assert cfg.learning_rate == 5e-4 and cfg.max_source_length == cfg.max_target_length == 512
    else:
        assert isinstance(cfg, CausalRecipeConfig) and cfg.learning_rate == 2e-5 and cfg.max_length == 512
    # the effective-batch arithmetic in the comment matches the settings
    text = recipe_path(name).read_text()
    per, acc = cfg.per_device_train_batch_size, cfg.gradient_accumulation_steps
    line = next(ln for ln in text.splitlines() if ln.startswith("# effective batch"))
    a, b, devices, total = (int(x) for x in re.search(r"= (\d+) x (\d+) x (\d+) = (\d+)", line).groups())
    assert (a, b) == (per, acc) and per * acc * devices == total


def test_overrides_win_over_the_yaml():
    recipe = load_recipe("lamini-gpt-124m", learning_rate=1e-3, output_dir="elsewhere")
    assert recipe.config.learning_rate == 1e-3 and recipe.config.output_dir == "elsewhere"


def test_unknown_key_and_family_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("family: seq2seq\nmodel_name_or_path: x\nlearning_rat: 1\n")
    with pytest.raises(ConfigError, match="learning_rat"):
        load_recipe(str(bad))
    bad.write_text("family: prefix-lm\nmodel_name_or_path: x\n")
    with pytest.raises(ValueError, match="unknown model family 'prefix-lm'; known: causal, seq2seq"):
        load_recipe(str(bad))


def test_qlora_without_bitsandbytes_says_so(tiny_gpt2):
    pytest.importorskip("peft")
    from transformers.utils import is_bitsandbytes_available

    if is_bitsandbytes_available():
        pytest.skip("bitsandbytes is installed here")
    recipe = load_recipe(family="causal", model_name_or_path=str(tiny_gpt2), use_lora=True, load_in_4bit=True)
    with pytest.raises(ImportError, match="bitsandbytes"):
        recipe.load_model()


def test_training_rouge_l_is_rouge_scores():
    """The training metric is the library's one ROUGE-L, and equals Google's rouge-score pair by pair."""
    from rouge_score import rouge_scorer

    from lamini_lm.train import mean_rouge_l

    preds = ["the cat sat on the mat", "Red, yellow and blue.", "", "Paris"]
    refs = ["a cat sat on a mat", "Red, blue and yellow.", "nothing", "Paris is the capital of France"]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    expected = sum(scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs)) / len(preds)
    assert mean_rouge_l(preds, refs) == pytest.approx(expected)
    assert mean_rouge_l(["the cat sat"], ["the cat sat"]) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["deepspeed_zero2", "deepspeed_zero3", "fsdp", "multi_gpu"])
def test_accelerate_configs_load_with_accelerate(name):
    from importlib import resources

    from accelerate.commands.config.config_args import ClusterConfig

    path = resources.files("lamini_lm.recipes") / "accelerate" / f"{name}.yaml"
    cfg = ClusterConfig.from_yaml_file(str(path))
    assert cfg.mixed_precision == "bf16" and cfg.num_processes == 8
