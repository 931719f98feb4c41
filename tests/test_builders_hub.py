"""The builders' default sources, read from a Hub: the fake hub of the test kit stands in for huggingface.co and
the real huggingface_hub/datasets clients talk to it (listing, download, streaming)."""

from __future__ import annotations

import datasets
import pytest

pytestmark = pytest.mark.integration


def publish_parquet(repo_id, path_in_repo, rows, tmp_path):
    from huggingface_hub import HfApi

    local = tmp_path / path_in_repo.replace("/", "_")
    datasets.Dataset.from_list(rows).to_parquet(str(local))
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    api.upload_file(path_or_fileobj=str(local), path_in_repo=path_in_repo, repo_id=repo_id, repo_type="dataset")


def test_alpaca_default_reads_tatsu_lab_alpaca_from_the_hub_and_streams(fake_hub, tmp_path):
    from lamini_lm.builders import Alpaca

    rows = [{"instruction": f"Tip {i}", "input": "", "output": f"Do {i}.", "text": "..."} for i in range(3)]
    publish_parquet("tatsu-lab/alpaca", "data/train-00000-of-00001.parquet", rows, tmp_path)
    builder = Alpaca(cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    assert builder.as_dataset(split="train")["output"] == ["Do 0.", "Do 1.", "Do 2."]
    streamed = list(Alpaca().as_streaming_dataset(split="train"))
    assert streamed[2] == {"instruction": "Tip 2", "input": "", "output": "Do 2."}


def test_build_original_reads_the_released_lamini_instruction(fake_hub, tmp_path):
    from lamini_lm.builders import build_instructions

    rows = [
        {"instruction": "Name a fruit.", "response": "Apple.", "instruction_source": "original_flan"},
        {"instruction": "Write a poem.", "response": "Roses.", "instruction_source": "self_instruct_with_topic"},
    ]
    publish_parquet("MBZUAI/LaMini-instruction", "data/train-00000-of-00001.parquet", rows, tmp_path)
    result = build_instructions(original=True)
    assert result.num_rows["all"] == 2 and result.num_rows["original_flan"] == 1
    ds = datasets.load_dataset("lamini_lm/instructions", "self_instruct_with_topic", split="train")
    assert ds[0]["response"] == "Roses."
