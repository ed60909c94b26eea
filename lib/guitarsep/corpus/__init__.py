"""The synthetic two-guitar corpus: score -> audio. Used by 01_data.ipynb (built and explored
there) and ``guitarsep build-corpus``; the later notebooks read the built corpus.

- :mod:`~guitarsep.corpus.compose`: two-part guitar pieces (idiom generator, music21
  reductions), split by piece.
- :mod:`~guitarsep.corpus.timbres`: the timbre table (soundfont + GM program + effects chain,
  seen/unseen pools).
- :mod:`~guitarsep.corpus.render`: rendering a part with FluidSynth + the timbre's effects.
- :mod:`~guitarsep.corpus.build`: :func:`build_corpus`, training renders and the valid clips
  plus the five test scenarios (seen, a, b, c, d), cached under ``profile.corpus_dir``.
- :mod:`~guitarsep.corpus.layout`: the files of a built corpus and their paths.
- :mod:`~guitarsep.corpus.clips`: reading a built corpus: :class:`Corpus`, :class:`Clip`,
  :func:`load_corpus`.
- :mod:`~guitarsep.corpus.stats`: the statistics 01_data.ipynb shows.

Nothing here imports torch.
"""
from guitarsep.corpus import build, clips, compose, layout, render, stats, timbres  # noqa: F401
from guitarsep.corpus.build import CORPUS_VERSION, build_corpus, corpus_key
from guitarsep.corpus.clips import Clip, Corpus, load_corpus
from guitarsep.corpus.compose import Piece, compose_pieces, generate_idiom_piece
from guitarsep.corpus.render import RenderError, render_part
from guitarsep.corpus.stats import (corpus_stats, distance_summary, onset_agreement,
                                    timbre_distances)
from guitarsep.corpus.timbres import load_timbres

__all__ = [
    "build_corpus", "corpus_key", "CORPUS_VERSION",
    "load_corpus", "Corpus", "Clip",
    "corpus_stats", "timbre_distances", "distance_summary", "onset_agreement",
    "compose_pieces", "generate_idiom_piece", "Piece",
    "load_timbres", "render_part", "RenderError",
]
