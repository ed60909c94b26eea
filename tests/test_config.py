"""Profiles: loaded by name, explicit paths, clear error on an unknown name."""
import pytest

from guitarsep.config import PROFILE_NAMES, SETTINGS, config_hash, load_profile


def test_profiles_load(tmp_path):
    for name in PROFILE_NAMES:
        p = load_profile(name, root=tmp_path)
        assert p.name == name
        assert p.corpus_dir == tmp_path.resolve() / "data" / name / "corpus"
        assert p.models, "every profile trains at least one model"
        assert {m.setting for m in p.models} <= set(SETTINGS)


def test_unknown_profile_lists_valid_names(tmp_path):
    with pytest.raises(ValueError) as err:
        load_profile("fast", root=tmp_path)
    for name in PROFILE_NAMES:
        assert name in str(err.value)


def test_config_hash_is_stable_and_sensitive(tmp_path):
    a = load_profile("smoke", root=tmp_path)
    b = load_profile("smoke", root=tmp_path / "elsewhere")
    assert config_hash(a.corpus) == config_hash(b.corpus)
    assert config_hash(a.corpus) != config_hash(load_profile("default", root=tmp_path).corpus)


def test_settings_bins():
    modern = SETTINGS["modern"]
    assert modern.n_bins == 2049
    assert modern.max_bin == int(16000 * 4096 / 44100) + 1
    assert SETTINGS["low_res"].max_bin == SETTINGS["low_res"].n_bins
