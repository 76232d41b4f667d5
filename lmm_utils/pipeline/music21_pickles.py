"""The corpus stage's parse without music21's pickle cache.

    from lmm_utils.pipeline.music21_pickles import parse_without_pickle_cache
    with parse_without_pickle_cache():         # notebooks/01_corpus.ipynb, around data.stages.build_corpus
        summary = build_corpus(corpus, real_data)

After parsing a file, music21 freezes the stream into a gzip pickle in its scratch folder (named by a hash of the
file's path), thaws it back and returns the thawed copy, so that the next parse of the same path loads the pickle.
The corpus stage parses each work once, and music21's corpus sits inside the project's own venv, so on a fresh clone
(CI, a newcomer) every path is new: every write is wasted, the freeze-write-thaw adds more than half the parse's own
time (`benchmarks/corpus_pickles.py`: 96.3 s with it, 61.5 s without, for the default's 662 works on 2 cores), and it
leaves one file per work in /tmp/music21 for each venv. Parsed without it, the stage writes the same works (the
benchmark compares them). Pickles that already exist are still read.

Why here and not in `lmm_utils/data` (beside `data.music21_compat`): the trained stages (pretrain, pretrain_M) list
`lmm_utils/data` among their DVC deps, and a sweep's archive keeps their outputs only while those deps are unchanged
(`pipeline.upstream_archive`): an edit anywhere in `lmm_utils/data` would have the LMs trained again on resuming the
paper archive, and on another machine in other last bits, so every archived run with them. Only the corpus stage
lists this module. It is outside the runs' code fingerprint (mapping.grid.NOT_TRAINING_CODE) too.
"""
from __future__ import annotations

import contextlib
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


__all__ = ["parse_without_pickle_cache"]
