"""The fake hub (tests/fakehub.py) behaves like the Hub for the real huggingface_hub and datasets clients."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.integration


def _write_folder(root):
    files = {
        "config.json": b'{"a": 1}\n',
        "model.safetensors": os.urandom(3000) + b"\x00",  # binary -> goes through the LFS batch API
        "sub/dir/notes.txt": "héllo\n".encode(),
        "empty.txt": b"",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_upload_folder_then_snapshot_download_gives_identical_bytes(fake_hub, tmp_path):
    from huggingface_hub import HfApi, snapshot_download

    files = _write_folder(tmp_path / "src")
    api = HfApi()
    url = api.create_repo("fake-user/roundtrip")
    assert url.startswith(fake_hub.endpoint)
    info = api.upload_folder(folder_path=tmp_path / "src", repo_id="fake-user/roundtrip", commit_message="add files")
    assert fake_hub.hub.commits("fake-user/roundtrip") == ["initial commit", "add files"]
    assert any(path.endswith("/lfs/objects/batch") for _, path in fake_hub.hub.requests)

    local = snapshot_download("fake-user/roundtrip", cache_dir=tmp_path / "cache")
    for rel, data in files.items():
        assert (tmp_path / "cache" / local / rel).read_bytes() == data, rel
    assert api.repo_info("fake-user/roundtrip").sha == info.oid
    tree = {f.path: f for f in api.list_repo_tree("fake-user/roundtrip", recursive=True)}
    assert tree["model.safetensors"].lfs.size == len(files["model.safetensors"])
    assert tree["config.json"].lfs is None
    [entry] = api.get_paths_info("fake-user/roundtrip", ["sub/dir/notes.txt"])
    assert entry.size == len(files["sub/dir/notes.txt"])


def test_errors_look_like_the_hubs(fake_hub, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    api = HfApi()
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info("fake-user/missing")
    api.create_repo("fake-user/exists")
    api.create_repo("fake-user/exists", exist_ok=True)  # 409 swallowed, as on the Hub
    with pytest.raises(HfHubHTTPError):
        api.create_repo("fake-user/exists")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("fake-user/exists", "nope.json", cache_dir=tmp_path)
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(token=False).create_repo("fake-user/anonymous")
    assert err.value.response.status_code == 401


def test_dataset_push_to_hub_and_download(fake_hub, tmp_path):
    import datasets
    from huggingface_hub import hf_hub_download

    ds = datasets.Dataset.from_dict({"instruction": ["a", "b"], "response": ["x", "y"]})
    ds.push_to_hub("fake-user/tiny-data")
    files = fake_hub.hub.files("fake-user/tiny-data", repo_type="dataset")
    [parquet] = [p for p in files if p.endswith(".parquet")]
    assert parquet.startswith("data/train-")
    assert "README.md" in files
    local = hf_hub_download("fake-user/tiny-data", parquet, repo_type="dataset", cache_dir=tmp_path)
    assert datasets.Dataset.from_parquet(local)["response"] == ["x", "y"]


@pytest.mark.slow  # ~10 s: a fresh interpreter imports transformers
def test_a_fresh_interpreter_reaches_the_fake_hub_through_the_environment_alone(fake_hub, tiny_t5, tmp_path):
    """What a user does: HF_ENDPOINT + HF_HUB_DISABLE_XET set before Python starts, nothing patched."""
    import subprocess
    import sys

    from huggingface_hub import HfApi

    HfApi().create_repo("fake-user/tiny-t5")
    HfApi().upload_folder(folder_path=tiny_t5, repo_id="fake-user/tiny-t5")
    code = (
        "from transformers import AutoModelForSeq2SeqLM\n"
        "m = AutoModelForSeq2SeqLM.from_pretrained('fake-user/tiny-t5')\n"
        "print(m.num_parameters())\n"
    )
    env = {**fake_hub.env, "HF_HUB_CACHE": str(tmp_path / "subprocess-cache")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    from transformers import AutoModelForSeq2SeqLM

    assert int(out.stdout.split()[-1]) == AutoModelForSeq2SeqLM.from_pretrained(tiny_t5).num_parameters()


ROWS = [
    {"instruction": "Name a fruit that is red.", "response": "An apple is red."},
    {"instruction": "What colour is the sky?", "response": "The sky is blue."},
    {"instruction": "Give a word for happy.", "response": "Glad."},
    {"instruction": "How many legs does a cat have?", "response": "A cat has four legs."},
]


def test_train_evaluate_publish_from_the_hub_keeps_base_model_datasets_and_results(fake_hub, tiny_t5, tmp_path):
    """Issue 12's acceptance: base model and data on the (test) Hub, train, evaluate, publish; the pushed card
    says where the student came from and how it scored, and no checkpoint leaves the machine."""
    import re
    import subprocess
    import sys

    import datasets
    import yaml
    from huggingface_hub import HfApi

    from lamini_lm.artifacts import lineage
    from lamini_lm.evaluation.demo_tasks import DEMO_TASKS, write_demo_tasks

    api = HfApi()
    api.create_repo("org/tiny-t5")
    api.upload_folder(folder_path=tiny_t5, repo_id="org/tiny-t5")
    datasets.Dataset.from_list(ROWS * 3).push_to_hub("org/instructions")
    env = {**fake_hub.env, "HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(tmp_path / "subprocess-cache")}

    def lamini(*args):
        cmd = [sys.executable, "-m", "lamini_lm.cli", *map(str, args)]
        done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    student, evals = tmp_path / "runs" / "student", tmp_path / "runs" / "eval"
    lamini("train", "lamini-flan-t5-77m", "--model_name_or_path", "org/tiny-t5", "--dataset_name", "org/instructions",
           "--output_dir", student, "--max_steps", 3, "--per_device_train_batch_size", 4, "--eval_split_size", 0,
           "--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", 1, "--use_cpu", "true",
           "--bf16", "false")  # fmt: skip
    assert list(student.glob("checkpoint-*")) and (student / "training_args.bin").is_file()
    tasks = [t for t in DEMO_TASKS if t != "demo_generate"]
    write_demo_tasks(tmp_path / "tasks", n=6)
    lamini("evaluate", student, "--output_dir", evals, "--tasks", *tasks, "--include_path", tmp_path / "tasks",
           "--no_include_defaults", "--device", "cpu", "--bootstrap_iters", 0)  # fmt: skip
    done = lamini("publish", student, "--repo_id", "org/lamini-tiny-t5")  # no --eval_results: found beside it

    files = fake_hub.hub.files("org/lamini-tiny-t5")
    card = files["README.md"].decode()
    meta = yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", card, flags=re.S).group(1))
    assert meta["base_model"] == "org/tiny-t5"
    assert meta["datasets"] == ["org/instructions"]
    [index] = meta["model-index"]
    assert len(index["results"]) == len(tasks) and "Not evaluated yet" not in card
    assert not [f for f in files if f.startswith("checkpoint-") or "/" in f]
    assert {"model.safetensors", "config.json", "lamini_lm.json"} <= set(files)
    assert "training_args.bin" not in files and "trainer_state.json" not in files and "optimizer.pt" not in files
    assert all(fake_hub.token.encode() not in data for data in files.values())
    assert done.stdout.strip().startswith(f"{fake_hub.endpoint}/org/lamini-tiny-t5/commit/")  # the commit URL
    # The lineage runs from the evaluation through the student to the Hub inputs.
    chain = lineage(evals)
    assert [m.stage for m in chain] == ["evaluate", "train"]
    train = chain[1]
    assert (
        train.input("base_model")["hub_id"] == "org/tiny-t5" and train.input("dataset")["hub_id"] == "org/instructions"
    )
    assert train.extra["train_examples"] == 12 and train.extra["steps"] == 3
