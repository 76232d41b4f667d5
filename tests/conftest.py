from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _single_thread(monkeypatch):
    """Tests are small: one torch thread keeps them fast and reproducible on a shared 2-core box."""
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path
