import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from lamini_lm import __version__
from lamini_lm.cli import STAGES, main
from lamini_lm.config import ConfigError, parse_config


def test_help_lists_every_stage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for stage in STAGES:
        assert stage in out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_every_stage_resolves_to_a_callable():
    import importlib

    for name, (target, help_text) in STAGES.items():
        module, _, func = target.partition(":")
        assert callable(getattr(importlib.import_module(module), func or "main")), name
        assert help_text


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "lamini_lm.cli", "--help"], capture_output=True, text=True, check=True)
    assert "stages" in out.stdout


@dataclass
class _Model:
    model_name_or_path: str = field(metadata={"help": "base model"})
    family: str = field(default="seq2seq", metadata={"help": "seq2seq or causal"})


@dataclass
class _Train:
    learning_rate: float = field(default=5e-4, metadata={"help": "peak learning rate"})
    num_train_epochs: int = field(default=5, metadata={"help": "epochs"})


def test_yaml_then_cli_overrides(tmp_path):
    cfg = tmp_path / "r.yaml"
    cfg.write_text("model_name_or_path: t5-small\nlearning_rate: 0.001\n")
    m, t = parse_config([_Model, _Train], [str(cfg), "--num_train_epochs", "2"])
    assert (m.model_name_or_path, t.learning_rate, t.num_train_epochs) == ("t5-small", 0.001, 2)
    m, t = parse_config([_Model, _Train], [str(cfg), "--learning_rate", "2e-5"])
    assert t.learning_rate == 2e-5


def test_yaml_unknown_key_names_file_and_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model_name_or_path: t5-small\nlearnig_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*learnig_rate"):
        parse_config([_Model, _Train], [str(cfg)])


def test_yaml_not_a_mapping(tmp_path):
    cfg = tmp_path / "list.yaml"
    cfg.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="list.yaml.*mapping"):
        parse_config([_Model], [str(cfg)])


def test_builders_and_recipes_are_installed_with_the_package():
    """builders/ and recipes/ sit at the top level but install as lamini_lm.builders / lamini_lm.recipes."""
    import lamini_lm.builders
    import lamini_lm.recipes

    assert lamini_lm.builders.__file__ and callable(lamini_lm.recipes.list_recipes)
    with pytest.raises(FileNotFoundError, match="no shipped recipe"):
        lamini_lm.recipes.recipe_path("no-such-student")


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_help_is_plain_and_ends_with_examples(stage):
    """--help exits 0, ends with a usage example, shows each default once and says no internal reference."""
    proc = subprocess.run(
        [sys.executable, "-m", "lamini_lm.cli", stage, "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "examples:" in text and "lamini-lm" in text.split("examples:")[-1]
    assert "SPEC" not in text
    lines = text.splitlines()
    assert all(line.count("(default:") <= 1 for line in lines)
    for i, line in enumerate(lines):  # a --no_x flag says what it turns off, not the positive flag's text
        if line.strip().startswith("--no_"):
            assert "turn off" in line or "turn off" in lines[i + 1], line


def test_user_mistakes_exit_2_with_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "lamini_lm.cli", "dedup", "--input", "x.jsonl", "--threshold", "7", "--output", "o"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["lamini-lm dedup: error: --threshold: must be in (0, 1], got 7.0"]
