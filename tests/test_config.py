import pytest
import yaml

from taste.config import ParamsError, REPO_ROOT, apply_profile, deep_merge, load_params
from taste.stages import STAGE_NOTEBOOKS, UnknownStageError, run_stage


def test_deep_merge_overrides_leaves_and_keeps_siblings():
    base = {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "f": [1, 2]}
    merged = deep_merge(base, {"a": {"c": {"d": 20}}, "f": [9]})
    assert merged == {"a": {"b": 1, "c": {"d": 20, "e": 3}}, "f": [9]}
    assert base["a"]["c"]["d"] == 2  # input untouched


def test_apply_profile_rewrites_params(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "default", "units": {"steps": 100, "lr": 0.1}}))
    profile = tmp_path / "smoke.yaml"
    profile.write_text(yaml.safe_dump({"profile": "smoke", "units": {"steps": 5}}))
    apply_profile(params, profile)
    assert load_params(params) == {"profile": "smoke", "units": {"steps": 5, "lr": 0.1}}


def test_missing_or_malformed_params_name_the_file(tmp_path):
    with pytest.raises(ParamsError, match="nope.yaml"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ParamsError, match="bad.yaml"):
        load_params(bad)


def test_profiles_only_name_keys_that_params_has():
    """A typo in a profile would silently add a dead key: every overlay key must exist in params.yaml."""
    params = load_params(REPO_ROOT / "params.yaml")

    def check(overlay, base, where):
        for key, value in overlay.items():
            assert key in base, f"{where}{key} is not in params.yaml"
            if isinstance(value, dict) and isinstance(base[key], dict):
                check(value, base[key], f"{where}{key}.")

    for profile in (REPO_ROOT / "profiles").glob("*.yaml"):
        check(load_params(profile), params, f"{profile.name}: ")


def test_every_stage_has_its_notebook_pair():
    for name in STAGE_NOTEBOOKS.values():
        assert (REPO_ROOT / "notebooks" / f"{name}.py").exists(), name
        assert (REPO_ROOT / "notebooks" / f"{name}.ipynb").exists(), name


def test_unknown_stage_is_rejected():
    with pytest.raises(UnknownStageError, match="stages are"):
        run_stage("nonsense")


def test_notebooks_are_in_sync_with_their_jupytext_pair_and_carry_no_outputs():
    import jupytext

    for name in STAGE_NOTEBOOKS.values():
        py = jupytext.read(REPO_ROOT / "notebooks" / f"{name}.py")
        nb = jupytext.read(REPO_ROOT / "notebooks" / f"{name}.ipynb")
        assert [c.source for c in py.cells] == [c.source for c in nb.cells], f"{name}: run `make sync-notebooks`"
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name}.ipynb carries outputs"
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and "params_path" in tagged[0].source, f"{name}: needs one `parameters` cell"
