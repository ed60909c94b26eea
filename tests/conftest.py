"""Shared fixtures.

``smoke_root`` / ``smoke_profile`` / ``smoke_corpus``: the smoke corpus is built ONCE per test
session (``corpus.build_corpus``) into a temporary root and shared by every test module that
asks for it (data, training, corpus tests). Tests must not modify it.
"""
from __future__ import annotations

import pytest

from guitarsep.config import load_profile


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory):
    """A temporary project root holding the session's smoke corpus under data/smoke/corpus."""
    return tmp_path_factory.mktemp("smoke_root")


@pytest.fixture(scope="session")
def smoke_profile(smoke_root):
    return load_profile("smoke", root=smoke_root)


@pytest.fixture(scope="session")
def smoke_corpus(smoke_profile):
    """The smoke corpus (``corpus.build_corpus(load_profile("smoke", root=tmp))``), built once."""
    corpus = pytest.importorskip("guitarsep.corpus")
    return corpus.build_corpus(smoke_profile, progress=False)
