"""The stage contract's pieces: manifests (secrets never stored), lineage, reports and output safety."""

from __future__ import annotations

import json

import pytest

from lamini_lm.artifacts import (
    MANIFEST_FILE,
    Manifest,
    StepReport,
    artifact_output,
    check_output,
    describe_input,
    lineage,
    read_manifest,
    redact,
)
from lamini_lm.errors import OutputExistsError


def test_redact_removes_secrets_by_key_and_by_shape():
    cfg = {"api_key": "abc", "hub_token": "hf_abcdefghijkl", "nested": {"x": "sk-0123456789abcdef"}, "n": 3}
    out = redact(cfg)
    assert out == {"api_key": "<redacted>", "hub_token": "<redacted>", "nested": {"x": "<redacted>"}, "n": 3}
    assert redact({"api_key": None}) == {"api_key": None}  # nothing to hide


def test_manifest_round_trip_and_no_secret_on_disk(tmp_path):
    m = Manifest(
        stage="generate_responses",
        config={"api_key": "sk-verysecretkey123"},
        rows=2,
        reports=[StepReport("dedup", rows_in=3, rows_out=2, removed={"exact": 1})],
    )
    m.save(tmp_path)
    text = (tmp_path / MANIFEST_FILE).read_text()
    assert "verysecret" not in text
    back = read_manifest(tmp_path)
    assert back.id == m.id and back.rows == 2 and back.report("dedup").removed == {"exact": 1}
    assert back.versions["lamini-lm"]


def test_lineage_follows_inputs_through_their_artifacts(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    (first / "data.txt").write_text("x")
    m1 = Manifest(stage="generate_instructions")
    m1.save(first)
    second.mkdir()
    m2 = Manifest(stage="dedup", inputs=[describe_input(first / "data.txt")])
    m2.save(second)
    assert m2.inputs[0]["manifest_id"] == m1.id
    assert [m.stage for m in lineage(second)] == ["dedup", "generate_instructions"]


def test_output_safety_refuses_a_users_folder_and_keeps_it(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="notes.txt"):
        with artifact_output(target, "dedup"):
            raise AssertionError("never reached")
    assert (target / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left


def test_output_replaces_its_own_artifact_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "out"
    with artifact_output(target, "dedup") as tmp:
        Manifest(stage="dedup", rows=1).save(tmp)
    with artifact_output(target, "dedup") as tmp:
        Manifest(stage="dedup", rows=2).save(tmp)
    assert read_manifest(target).rows == 2
    with pytest.raises(RuntimeError):
        with artifact_output(target, "dedup") as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("crash")
    assert read_manifest(target).rows == 2 and not (target / "half").exists()
    check_output(target, "filters", overwrite=True)
    with pytest.raises(OutputExistsError, match="'dedup' output"):
        check_output(target, "filters")


def test_manifest_file_is_plain_json(tmp_path):
    Manifest(stage="x").save(tmp_path)
    data = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert data["stage"] == "x" and "created" in data and "git_commit" in data


def test_a_users_file_added_to_an_old_artifact_is_not_replaced_silently(tmp_path):
    target = tmp_path / "out"
    with artifact_output(target, "dedup") as tmp:
        (tmp / "data.arrow").write_text("rows")
        Manifest(stage="dedup").save(tmp)
    assert read_manifest(target).files == ["data.arrow"]
    (target / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="notes.txt"):
        check_output(target, "dedup")
    assert (target / "notes.txt").read_text() == "mine"
    check_output(target, "dedup", overwrite=True)  # asked for: allowed
