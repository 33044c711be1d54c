"""Shared test settings: plain, wide, offline output for every test."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _plain_offline_environment(monkeypatch):
    """No colours or terminal tricks in captured output, no line wrapping, and never the Hugging Face hub."""
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny models step fastest on one thread, and tests then run the same on 2 cores or 64."""
    import torch

    torch.set_num_threads(1)
