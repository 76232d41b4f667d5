"""The corpus stage's parse, without the two things music21 does that the stage never reads.

    from lmm_utils.pipeline.music21_parse import corpus_parse
    with corpus_parse():                        # notebooks/01_corpus.ipynb, around data.stages.build_corpus
        summary = build_corpus(corpus, real_data)

`corpus_parse` is both blocks below at once; the stage writes the same works with them as without (the corpus
benchmark hashes them), only sooner (`benchmarks/corpus_parse.py`, the default's 662 works on 2 cores).

- **Pickle cache** (`parse_without_pickle_cache`). After parsing a file, music21 freezes the stream into a gzip
  pickle in its scratch folder (named by a hash of the file's path), thaws it back and returns the thawed copy, so
  that the next parse of the same path loads the pickle. The corpus stage parses each work once, and music21's corpus
  sits inside the project's own venv, so on a fresh clone (CI, a newcomer) every path is new: every write is wasted,
  the freeze-write-thaw adds about half the parse's own time (77.1 s with it, 50.8 s without), and it leaves one
  file per work in /tmp/music21 for each venv. Pickles that already exist are still read.
- **Beams** (`parse_without_beams`). music21's ABC reader beams every part it reads (`Stream.makeBeams`, with stem
  directions per beam group; the ABC collections are most of the corpus): a sixth of the parse without pickles
  (50.8 -> 41.9 s), for notation the stage never reads -- it keeps pitches, onsets, durations, bars, keys, tempo and
  dynamics (`data.corpus.extract_piece`). A beaming error that music21 does not catch itself no longer drops a work.

Why here and not in `lmm_utils/data` (beside `data.music21_compat`): the trained stages (pretrain, pretrain_M) list
`lmm_utils/data` among their DVC deps, and a sweep's archive keeps their outputs only while those deps are unchanged
(`pipeline.upstream_archive`): an edit anywhere in `lmm_utils/data` would have the LMs trained again on resuming the
paper archive, and on another machine in other last bits, so every archived run with them. Only the corpus stage
lists this module. It is outside the runs' code fingerprint (mapping.grid.NOT_TRAINING_CODE) too.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import inspect


@contextlib.contextmanager
def parse_without_pickle_cache():
    """Within the block (and in processes forked inside it), music21 parses files without writing its pickle cache:
    `Converter.parseFile`'s `storePickle` defaults to False. Yields whether the patch applied (False if a music21
    without `storePickle` is installed: it then parses as it always does)."""
    from music21.converter import Converter  # deferred: music21 takes about a second to import

    original = Converter.parseFile
    if "storePickle" not in inspect.signature(original).parameters:
        yield False
        return

    @functools.wraps(original)
    def parse_file(self, fp, *args, storePickle=False, **keywords):
        return original(self, fp, *args, storePickle=storePickle, **keywords)

    Converter.parseFile = parse_file
    try:
        yield True
    finally:
        Converter.parseFile = original


@contextlib.contextmanager
def parse_without_beams():
    """Within the block (and in processes forked inside it), music21's `Stream.makeBeams` beams nothing: in place it
    leaves the stream as it is (and returns None, as the method does), otherwise it returns an unbeamed copy. So the
    ABC reader's beaming is skipped. Restored after."""
    from music21 import stream  # deferred: music21 takes about a second to import

    original = stream.Stream.makeBeams

    @functools.wraps(original)
    def keep_unbeamed(self, *args, inPlace=False, **keywords):
        return None if inPlace else copy.deepcopy(self)

    stream.Stream.makeBeams = keep_unbeamed
    try:
        yield
    finally:
        stream.Stream.makeBeams = original


@contextlib.contextmanager
def corpus_parse():
    """parse_without_pickle_cache and parse_without_beams together: what the corpus stage parses inside."""
    with parse_without_pickle_cache(), parse_without_beams():
        yield


__all__ = ["corpus_parse", "parse_without_beams", "parse_without_pickle_cache"]
