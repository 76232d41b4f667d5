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


def pytest_collection_modifyitems(config, items):
    """Files with a minutes-long test first, whole (stable order otherwise): `make test` runs pytest-xdist with two
    workers and whole files per worker, so the tiny-pipeline file starts at once and the rest run beside it."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
