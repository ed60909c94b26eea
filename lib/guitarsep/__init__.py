"""guitarsep: score-informed separation of mixtures of two guitars.

A reproducible companion to "Monaural Score-Informed Source Separation of Sound Mixtures of
Two Guitars". Modules follow the data flow notes -> audio -> features -> model -> estimate ->
metric -> figure; see README.md.
"""
__version__ = "0.1.0"
