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
