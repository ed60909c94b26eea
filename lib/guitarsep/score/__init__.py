"""Scores: a part's notes, score-file readers, score masks, alignment and perturbations.

- :mod:`~guitarsep.score.notes`: :class:`Notes` (one part: onset, offset, pitch, velocity),
  :func:`validate_notes`, the text format (:func:`save_notes`) and :func:`notes_to_pretty_midi`.
- :mod:`~guitarsep.score.readers`: :func:`load_notes` / :func:`list_parts` for MIDI, the text
  format, MusicXML and Guitar Pro (:mod:`~guitarsep.score.guitarpro`), and the part choice of
  ``--part`` (:func:`parse_part`, :func:`part_names`, :func:`resolve_part`).
- :mod:`~guitarsep.score.masks`: the harmonic-comb :func:`binary_score_mask`, the soft mask
  :func:`soft_score_mask` and :func:`score_masks` (``docs/method.md#score-mask``).
- :mod:`~guitarsep.score.align` (not imported here): DTW alignment of a score to a recording
  (``guitarsep separate --align``, ``06_robustness.ipynb``).
- :mod:`~guitarsep.score.perturb`: score errors for the robustness study
  (:func:`perturb_notes`, :func:`onset_error_ms`).

Used by ``01_data.ipynb`` (reading scores, drawing masks), ``06_robustness.ipynb``
(perturbations, alignment) and the CLI ``guitarsep separate`` (reading the user's score), as
well as by the corpus, training and separation code. Importing it imports neither torch nor
pretty_midi / music21 / pyguitarpro: the corpus is torch-free, and the readers import their
library when a file is read.
"""
from guitarsep.score.masks import binary_score_mask, score_masks, soft_score_mask
from guitarsep.score.notes import (DEFAULT_VELOCITY, TEXT_EXTENSIONS, Notes, notes_to_pretty_midi,
                                   save_notes, validate_notes)
from guitarsep.score.perturb import PERTURBATION_KINDS, onset_error_ms, perturb_notes
from guitarsep.score.readers import (GUITARPRO_EXTENSIONS, MIDI_EXTENSIONS, MUSICXML_EXTENSIONS,
                                     list_parts, load_notes, parse_part, part_names,
                                     resolve_part)

__all__ = [
    "Notes", "validate_notes", "save_notes", "notes_to_pretty_midi", "DEFAULT_VELOCITY",
    "load_notes", "list_parts", "parse_part", "part_names", "resolve_part",
    "MIDI_EXTENSIONS", "TEXT_EXTENSIONS", "MUSICXML_EXTENSIONS", "GUITARPRO_EXTENSIONS",
    "binary_score_mask", "soft_score_mask", "score_masks",
    "PERTURBATION_KINDS", "perturb_notes", "onset_error_ms",
]
