"""music21's catalogue walked in linear time, with the same entries in the same order as its own indexing."""
from lmm_utils.data.music21_compat import add_bundle_iteration


def test_bundle_iteration_yields_what_indexing_yields():
    from music21 import corpus
    from music21.metadata.bundles import MetadataBundle

    bundle = corpus.corpora.CoreCorpus().metadataBundle
    add_bundle_iteration()
    assert "__iter__" in vars(MetadataBundle), "not patched: music21 changed (MetadataBundle._metadataEntries?)"
    assert add_bundle_iteration() is False  # once only: a second call finds the method in place
    entries = list(bundle)
    assert len(entries) == len(bundle) > 1000
    step = len(bundle) // 13  # each bundle[i] copies the catalogue: a sample, not all 15,000
    assert all(entries[i] is bundle[i] for i in range(0, len(bundle), step))
