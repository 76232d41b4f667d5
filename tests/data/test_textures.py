"""Keyboard textures, the polyphony family and the keyboard works kept out of the pools (data/textures.py,
data/pianist.py's rolled chords, data/corpus.py)."""
import factories
import numpy as np
import pytest

from lmm_utils.core.motion import PIANO_HIGH, PIANO_LOW
from lmm_utils.core.score import ScoreNote
from lmm_utils.data.corpus import (
    FAMILIES,
    KEYBOARD_WORKS,
    CorpusError,
    WorkRef,
    family,
    is_keyboard_work,
    list_works,
)
from lmm_utils.data.engrave import excerpt_to_stream
from lmm_utils.data.excerpts import ExcerptConfig, make_excerpts
from lmm_utils.data.music21_compat import add_bundle_iteration
from lmm_utils.data.pianist import PianistConfig, perform
from lmm_utils.data.textures import (
    REGISTER_MODES,
    arpeggiate,
    collection_textures,
    figure_pitches,
    keyboard_register,
    keyboard_texture,
    register_variant,
    texture_stats,
)


@pytest.fixture(scope="module", autouse=True)
def _fast_catalogue():
    add_bundle_iteration()  # list_works walks music21's catalogue: linear with this, as the corpus stage runs it


def _chorale_bar() -> list[ScoreNote]:
    """Soprano in quarters over alto, tenor and bass held for two beats each (a chorale-like bar)."""
    soprano = [ScoreNote(72 + i, float(i), 1.0, 0) for i in range(4)]
    lower = [ScoreNote(p, t, 2.0, v) for t in (0.0, 2.0) for p, v in ((64, 1), (55, 2), (48, 3))]
    return soprano + lower


def test_figure_is_alberti_order_through_the_chord():
    assert figure_pitches([48, 55, 64], 6) == [48, 64, 55, 64, 48, 64]
    assert figure_pitches([60, 67], 3) == [60, 67, 60]


def test_arpeggiate_breaks_held_chords_and_keeps_the_melody():
    out = arpeggiate(_chorale_bar(), step=0.5)
    melody = [n for n in out if n.voice == 0]
    assert melody == [n for n in _chorale_bar() if n.voice == 0]
    figure = sorted((n for n in out if n.voice > 0), key=lambda n: n.onset)
    assert [n.onset for n in figure] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    assert [n.pitch for n in figure] == [48, 64, 55, 64] * 2
    assert {n.voice for n in figure} == {3}  # written in the bass's part
    assert all(n.duration == 0.5 for n in figure)
    # no two notes of a part overlap, so the engraver writes it as one line
    for v in {n.voice for n in out}:
        part = sorted((n for n in out if n.voice == v), key=lambda n: n.onset)
        assert all(a.onset + a.duration <= b.onset + 1e-9 for a, b in zip(part, part[1:]))
    excerpt_to_stream(factories.excerpt(out))  # engraves


def test_short_chords_and_single_lower_notes_are_left_alone():
    notes = [ScoreNote(72, 0.0, 0.5, 0), ScoreNote(60, 0.0, 0.5, 1), ScoreNote(52, 0.0, 0.5, 2),
             ScoreNote(48, 1.0, 2.0, 3)]
    assert sorted(arpeggiate(notes, 0.5), key=lambda n: (n.onset, n.pitch)) == sorted(
        notes, key=lambda n: (n.onset, n.pitch))
    with pytest.raises(ValueError, match="arpeggiate_step"):
        arpeggiate(notes, 0.0)


def test_keyboard_texture_draws_only_where_it_applies():
    two_parts = factories.excerpt([ScoreNote(72, 0.0, 2.0, 0), ScoreNote(48, 0.0, 2.0, 1)])
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert keyboard_texture(two_parts, 1.0, 0.5, rng) is two_parts
    assert keyboard_texture(factories.excerpt(_chorale_bar()), 0.0, 0.5, rng).notes == _chorale_bar()
    assert rng.bit_generator.state == state  # nothing drawn: a stream of its own either way
    assert keyboard_texture(factories.excerpt(_chorale_bar()), 1.0, 0.5, rng).notes != _chorale_bar()


def test_pianist_rolls_chords_bottom_up_and_changes_nothing_else():
    score = factories.excerpt(_chorale_bar(), bpm=60.0)
    plain = perform(score, PianistConfig(), np.random.default_rng(3))
    rolled = perform(score, PianistConfig(spread_prob=1.0, spread_ms=(40.0, 40.0)), np.random.default_rng(3))
    # rolls from a stream of their own leave the main stream as a pianist who never rolls leaves it
    main = np.random.default_rng(3)
    perform(score, PianistConfig(spread_prob=1.0), main, roll_rng=np.random.default_rng(9))
    untouched = np.random.default_rng(3)
    perform(score, PianistConfig(), untouched)
    assert main.random() == untouched.random()
    lone = {73, 75}  # the soprano's notes on beats 2 and 4 start no chord: untouched
    assert [n for n in plain.notes if n.pitch in lone] == [n for n in rolled.notes if n.pitch in lone]
    chord = sorted((n for n in rolled.notes if n.onset < 0.4), key=lambda n: n.pitch)  # the first beat's chord
    assert [n.pitch for n in chord] == [48, 55, 64, 72]
    gaps = np.diff([n.onset for n in chord])
    assert np.allclose(gaps, 0.040 / 3, atol=1e-9)  # bottom to top over 40 ms
    by_pitch = {(n.pitch, round(n.offset, 6)) for n in plain.notes}
    assert {(n.pitch, round(n.offset, 6)) for n in rolled.notes} == by_pitch  # releases unchanged
    assert plain.pedal == rolled.pedal


def test_texture_stats_count_notes_per_second_and_polyphony():
    ex = factories.excerpt(_chorale_bar(), bpm=120.0)  # 4 beats at 120 bpm = 2 s
    rate, poly = texture_stats(ex)
    assert rate == pytest.approx(10 / 2.0)
    assert poly == [4] * 10  # at every onset the soprano and the three held lower parts sound
    _, poly_figured = texture_stats(factories.excerpt(arpeggiate(_chorale_bar(), 0.5)))
    assert max(poly_figured) == 2  # the figure: one lower note at a time under the soprano
    table = collection_textures([ex, factories.excerpt([ScoreNote(60, 0.0, 4.0, 0)], id="x", collection="folkish")])
    assert table["test"]["polyphony_hist"]["4"] == 10 and table["folkish"]["polyphony_mean"] == 1.0
    assert table["folkish"]["notes_per_s"]["mean"] == pytest.approx(0.5)


def test_polyphony_family_and_keyboard_works_kept_out():
    assert family("palestrina") == family("mozart") == "polyphony" and "polyphony" in FAMILIES
    assert family("bachChorales") == "chorales" and family("essenFolksong") == "folk"
    assert is_keyboard_work("mozart/k545/movement1_exposition.mxl") and not is_keyboard_work("mozart/k458/movement1.mxl")
    works = list_works(["mozart"], None, 0)
    assert not any(is_keyboard_work(w.source) for w in works)
    assert len(works) == 15  # 16 files, K. 545 kept out; before nested ids, every movementN collapsed into one id
    assert WorkRef("mozart", "mozart/k458/movement1.mxl").id == "mozart-k458_movement1"
    assert WorkRef("essenFolksong", "essenFolksong/altdeu10.abc", 3).id == "essenFolksong-altdeu10-3"  # unchanged
    with pytest.raises(CorpusError, match="keyboard works"):
        list_works(["joplin"], None, 0)
    assert any(k.startswith("joplin") for k in KEYBOARD_WORKS)


def test_only_score_files_are_listed():
    # music21's catalogue holds Monteverdi's Roman-numeral analyses (.rntxt) beside the madrigals themselves
    works = list_works(["monteverdi"], None, 0)
    assert works and all(w.source.endswith((".mxl", ".xml", ".krn", ".abc")) for w in works)


def test_a_doubled_pitch_is_struck_once_in_a_rolled_chord():
    notes = [ScoreNote(72, 0.0, 1.0, 0), ScoreNote(64, 0.0, 1.0, 1), ScoreNote(64, 0.0, 1.0, 2),
             ScoreNote(48, 0.0, 1.0, 3)]
    score = factories.excerpt(notes, bpm=60.0)
    rolled = perform(score, PianistConfig(spread_prob=1.0, spread_ms=(40.0, 40.0)), np.random.default_rng(0))
    onsets = {}
    for n in rolled.notes:
        onsets.setdefault(n.pitch, []).append(n.onset)
    assert len(set(onsets[64])) == 1  # both parts' E at one time
    assert onsets[72][0] - onsets[48][0] == pytest.approx(0.040)  # 3 distinct pitches over 40 ms
    with pytest.raises(ValueError, match="min_spread_notes"):
        PianistConfig(min_spread_notes=1)
    with pytest.raises(ValueError, match="spread_ms"):
        PianistConfig(spread_ms=(60.0, 15.0))


def test_per_collection_caps_and_their_typos():
    works = list_works(["mozart", "palestrina"], 5, 0, {"palestrina": 2})
    per = {c: sum(w.collection == c for w in works) for c in ("mozart", "palestrina")}
    assert per == {"mozart": 5, "palestrina": 2}
    assert list_works(["mozart"], 5, 0, {"palestrina": 2}) == [w for w in works if w.collection == "mozart"]
    with pytest.raises(CorpusError, match="max_works_by_collection names"):
        list_works(["mozart"], 5, 0, {"palestrna": 2})


def test_register_doubles_the_bass_below_and_the_top_part_above():
    bar = _chorale_bar()
    below = register_variant(bar, "double_below", np.random.default_rng(0))
    added = sorted({(n.pitch, n.onset, n.voice) for n in below} - {(n.pitch, n.onset, n.voice) for n in bar})
    assert added == [(36, 0.0, 3), (36, 2.0, 3)]  # the bass (voice 3, lowest) an octave down, in its own voice
    above = register_variant(bar, "double_above", np.random.default_rng(0))
    assert sorted(n.pitch for n in above if n not in bar) == [84, 85, 86, 87]  # the soprano an octave up
    melody = [ScoreNote(60, 0.0, 1.0, 0), ScoreNote(62, 1.0, 1.0, 0)]  # a single part is its own bass
    assert sorted(n.pitch for n in register_variant(melody, "double_below", np.random.default_rng(0))) == [48, 50, 60, 62]
    with pytest.raises(ValueError, match="register mode"):
        register_variant(bar, "sideways", np.random.default_rng(0))


def test_register_doubles_the_highest_part_and_keeps_the_excerpts_own_unisons():
    crossed = [ScoreNote(64, 0.0, 1.0, 0), ScoreNote(76, 0.0, 1.0, 1), ScoreNote(52, 0.0, 1.0, 2)]  # voice 1 on top
    assert sorted(n.pitch for n in register_variant(crossed, "double_above", np.random.default_rng(0))) == [52, 64, 76, 88]
    unison = [ScoreNote(60, 0.0, 1.0, 0), ScoreNote(60, 0.0, 1.0, 1), ScoreNote(48, 0.0, 1.0, 2)]
    below = register_variant(unison, "double_below", np.random.default_rng(0))
    assert [n.pitch for n in below].count(60) == 2  # the two parts' unison stays, as in an untouched excerpt
    assert sorted(n.pitch for n in below) == [36, 48, 60, 60]
    above = register_variant([ScoreNote(60, 0.0, 1.0, 0), ScoreNote(72, 0.0, 1.0, 1)], "double_above",
                             np.random.default_rng(0))
    assert sorted(n.pitch for n in above) == [60, 72, 84]  # voice 1 is the top part: 72 doubled, 60 left alone


def test_register_stays_on_the_keyboard():
    low = [ScoreNote(PIANO_LOW + 5, 0.0, 1.0, 0), ScoreNote(PIANO_LOW + 30, 0.0, 1.0, 1)]
    assert register_variant(low, "double_below", np.random.default_rng(0)) == sorted(
        low, key=lambda n: (n.onset, n.voice, -n.pitch))  # A0 - 12 has no key: nothing added
    wide = [ScoreNote(PIANO_LOW, 0.0, 1.0, 0), ScoreNote(PIANO_HIGH, 0.0, 1.0, 1)]
    assert register_variant(wide, "shift", np.random.default_rng(0)) == wide  # no octave fits: unchanged
    for seed in range(20):
        shifted = register_variant(_chorale_bar(), "shift", np.random.default_rng(seed))
        delta = {a.pitch - b.pitch for a, b in zip(shifted, _chorale_bar())}
        assert len(delta) == 1 and delta.pop() in (-24, -12, 12, 24)
        assert all(PIANO_LOW <= n.pitch <= PIANO_HIGH for n in shifted)


def test_keyboard_register_draws_from_its_own_stream_and_uses_every_mode():
    ex = factories.excerpt(_chorale_bar())
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert keyboard_register(ex, 0.0, rng) is ex and rng.bit_generator.state == state  # off: nothing drawn
    changed = [keyboard_register(ex, 1.0, np.random.default_rng(s)).notes != ex.notes for s in range(30)]
    assert all(changed)
    kinds = set()
    for s in range(60):
        notes = keyboard_register(ex, 1.0, np.random.default_rng(s)).notes
        kinds.add("below" if min(n.pitch for n in notes) == 36 and len(notes) > len(ex.notes) else
                  "above" if max(n.pitch for n in notes) == 87 and len(notes) > len(ex.notes) else "shift")
    assert kinds == {"below", "above", "shift"} and len(REGISTER_MODES) == 3


def test_register_prob_leaves_every_other_draw_of_an_excerpt_as_it_was():
    """Turning the register on changes notes only: excerpt windows, tempo, dynamics and textures draw as before."""
    from lmm_utils.data.corpus import Piece

    # 16 bars of a chorale-like texture (a quarter-note soprano over three lower parts held for two beats), so that
    # arpeggiation (3+ parts) can fire too: four 4-bar windows, three drawn
    notes = [[72 + i % 5, float(i), 1.0, 0] for i in range(64)]
    notes += [[p, float(t), 2.0, v] for t in range(0, 64, 2) for p, v in ((64, 1), (55, 2), (48, 3))]
    piece = Piece(id="p", collection="bachChorales", source="p", title="p", key="C major", key_fifths=0,
                  tempo_bpm=None, bars=[[4.0 * i, 4.0, "4/4"] for i in range(16)], dynamics=[],
                  notes=sorted(notes, key=lambda n: (n[1], n[3], -n[0])), n_voices=4)
    plain = make_excerpts(piece, ExcerptConfig(arpeggiate_prob=1.0), 0)
    wide = make_excerpts(piece, ExcerptConfig(arpeggiate_prob=1.0, register_prob=1.0), 0)
    assert [(e.id, e.tempo_bpm, e.dynamics) for e in plain] == [(e.id, e.tempo_bpm, e.dynamics) for e in wide]
    assert all(max(texture_stats(e)[1]) == 2 for e in plain)  # every window arpeggiated, as before
    for a, b in zip(plain, wide):  # the register only adds, or moves every note by whole octaves
        assert a.notes != b.notes
        assert ({(n.onset, n.voice) for n in a.notes} <= {(n.onset, n.voice) for n in b.notes}
                or {(n.pitch - m.pitch) % 12 for n, m in zip(b.notes, a.notes)} == {0})
