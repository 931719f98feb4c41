"""lamini_lm.io: atomic writes leave either the old file or the new one, with the mode a plain write gives."""

from __future__ import annotations

import os

import pytest

from lamini_lm.io import replace_dir, write_json, write_text_atomic


def test_atomic_text_gets_the_mode_of_a_plain_write(tmp_path):
    (tmp_path / "plain.txt").write_text("x")
    written = write_text_atomic(tmp_path / "sub" / "atomic.txt", "héllo\n")
    assert written.read_text(encoding="utf-8") == "héllo\n"
    assert written.stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert sorted(p.name for p in written.parent.iterdir()) == ["atomic.txt"]  # no temporary left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = write_json({"a": 1}, tmp_path / "r.json")
    with pytest.raises(TypeError):
        write_text_atomic(target, 42)  # not text: fails mid-write
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert os.listdir(tmp_path) == ["r.json"]


def test_replace_dir_swaps_a_folder_in(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "new.txt").write_text("new")
    replace_dir(tmp_path / "new", tmp_path / "out")
    assert os.listdir(tmp_path / "out") == ["new.txt"] and sorted(os.listdir(tmp_path)) == ["out"]
