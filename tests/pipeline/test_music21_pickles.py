"""pipeline.music21_pickles: music21 parses without writing its pickle cache inside the block, and parses the same."""
from lmm_utils.data.corpus import WorkRef, extract_piece
from lmm_utils.pipeline.music21_pickles import parse_without_pickle_cache


def test_parse_without_pickle_cache_writes_none_and_parses_the_same(tmp_path, monkeypatch):
    from music21 import converter, corpus

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
