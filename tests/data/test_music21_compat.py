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


def test_parse_without_pickle_cache_writes_none_and_parses_the_same(tmp_path, monkeypatch):
    from music21 import converter, corpus

    from lmm_utils.data.corpus import WorkRef, extract_piece
    from lmm_utils.data.music21_compat import parse_without_pickle_cache

    monkeypatch.setattr(converter.environLocal, "getRootTempDir", lambda: tmp_path)  # music21's scratch folder
    original = converter.Converter.parseFile
    ref = WorkRef("bachChorales", "bach/bwv66.6.mxl", None)
    with parse_without_pickle_cache() as patched:
        assert patched, "not patched: music21's Converter.parseFile has no storePickle any more"
        fresh = extract_piece(ref, corpus.parse(ref.source))
    assert converter.Converter.parseFile is original
    assert not list(tmp_path.glob("*.p.gz"))
    thawed = extract_piece(ref, corpus.parse(ref.source))  # music21's default: pickled, then thawed back
    assert len(list(tmp_path.glob("*.p.gz"))) == 1
    assert fresh.to_dict() == thawed.to_dict()
