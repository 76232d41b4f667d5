"""The `lmm` command and the shipped models."""
from lmm_utils import pipeline as _pipeline  # noqa: F401  (pyfluidsynth imported quietly under $CI: see there)
