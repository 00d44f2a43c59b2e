"""One "build aside, rename into place, manifest" helper for GGUF imports and fixtures: a
failed build leaves the earlier folder as it was, and only an earlier build is replaced."""
import pytest

from registry.atomic_dir import built_aside, read_manifest, replace_refusal, write_json


def build(out, version, fail=False):
    with built_aside(out, label="building") as staging:
        (staging / "weights").write_text(version)
        if fail:
            raise RuntimeError("the build broke")
        write_json(staging / "made.json", {"version": version})


def test_built_then_replaced_with_nothing_left_aside(tmp_path):
    out = tmp_path / "models" / "m"
    build(out, "1")
    assert read_manifest(out, "made.json") == {"version": "1"}
    assert replace_refusal(out, "made.json") is None
    build(out, "2")
    assert (out / "weights").read_text() == "2"
    assert sorted(p.name for p in out.parent.iterdir()) == ["m"]  # no staging, no retired folder


def test_a_failed_build_leaves_the_earlier_folder(tmp_path):
    out = tmp_path / "m"
    build(out, "1")
    with pytest.raises(RuntimeError, match="broke"):
        build(out, "2", fail=True)
    assert (out / "weights").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_only_an_empty_folder_or_an_earlier_build_may_be_replaced(tmp_path):
    assert replace_refusal(tmp_path / "absent", "made.json") is None
    (tmp_path / "empty").mkdir()
    assert replace_refusal(tmp_path / "empty", "made.json") is None
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert "holds no made.json" in replace_refusal(tmp_path / "mine", "made.json")
    (tmp_path / "file").write_text("x")
    assert "not a folder" in replace_refusal(tmp_path / "file", "made.json")
    assert read_manifest(tmp_path / "absent", "made.json") is None
