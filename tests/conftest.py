"""Shared test set-up: Keras on the torch backend (the library itself never picks one)."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
