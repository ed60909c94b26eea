"""guitarsep: score-informed separation of mixtures of two guitars.

A reproducible companion to "Monaural Score-Informed Source Separation of Sound Mixtures of
Two Guitars". The subpackages follow the data flow notes -> audio -> features -> model ->
estimate -> metric -> figure; see README.md ("What is where") and docs/design.md.
"""
from pathlib import Path

__version__ = "0.1.0"

#: Files shipped inside the package: the timbre table and the shipped models.
RESOURCES = Path(__file__).resolve().parent / "resources"
