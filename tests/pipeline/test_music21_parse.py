"""pipeline.music21_parse: inside its blocks music21 parses without writing its pickle cache and without beaming, and
the corpus stage's piece is the same."""
from lmm_utils.data.corpus import WorkRef, extract_piece
from lmm_utils.pipeline.music21_parse import corpus_parse, parse_without_beams, parse_without_pickle_cache


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


def _beams(score) -> int:
    return sum(len(n.beams.beamsList) for n in score.recurse().notes)


def test_parse_without_beams_skips_the_abc_readers_beaming_and_parses_the_same(tmp_path, monkeypatch):
    from music21 import converter, corpus, stream

    monkeypatch.setattr(converter.environLocal, "getRootTempDir", lambda: tmp_path)
    original = stream.Stream.makeBeams
    ref = WorkRef("essenFolksong", "essenFolksong/han1", 1)  # one ABC tune with eighth notes (51 beams)
    with parse_without_beams():
        plain = corpus.parse(ref.source, number=ref.number, forceSource=True)
        copied = plain.makeBeams()  # not in place: a copy, as music21's method returns
        assert copied is not plain and _beams(copied) == 0
    assert stream.Stream.makeBeams is original
    beamed = corpus.parse(ref.source, number=ref.number, forceSource=True)
    assert _beams(plain) == 0 < _beams(beamed)  # so the block did something
    assert extract_piece(ref, plain).to_dict() == extract_piece(ref, beamed).to_dict()


def test_corpus_parse_applies_both_and_restores_both():
    from music21 import converter, stream

    parse_file, make_beams = converter.Converter.parseFile, stream.Stream.makeBeams
    with corpus_parse():
        assert converter.Converter.parseFile is not parse_file and stream.Stream.makeBeams is not make_beams
    assert converter.Converter.parseFile is parse_file and stream.Stream.makeBeams is make_beams
