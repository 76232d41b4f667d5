"""How close an estimated performance is to the true one: mir_eval on `Performance` pairs.

Two families:
- transcription (h: A -> M): note F1 (onset within 50 ms, pitch exact, offsets ignored), note F1 with
  offsets, with offsets and velocity (mir_eval's MAESTRO convention), and frame F1 on 50 fps key-down rolls.
- performance (g: V -> M): note F1 against the true performance; note F1 after aligning the estimate's
  onsets to the reference's by DTW over onset events (so timing is factored out and only "the right
  notes in the right order" counts); tempo error; velocity error on matched notes.

Every function takes (ref, est) in that order, returns a flat dict of floats, and never reads files, so
the same code scores h, g, alignment pseudo-motion and the baselines. `aggregate` averages per-excerpt
rows overall and per collection.
"""
from __future__ import annotations

import warnings
from collections import defaultdict

import numpy as np

from lmm_utils.core.motion import (
    N_KEYS,
    PIANO_LOW,
    Performance,
    PerformedNote,
    _pedal_intervals,
    as_arrays,
    to_roll,
)

ONSET_TOLERANCE = 0.05  # seconds; the MIREX / MAESTRO convention
FPS = 50.0


def _prf(n_ref: int, n_est: int, n_match: int) -> tuple[float, float, float]:
    """Precision, recall, F1; two empty sets agree perfectly (mir_eval would say 0 and warn)."""
    if n_ref == 0 and n_est == 0:
        return 1.0, 1.0, 1.0
    p = n_match / n_est if n_est else 0.0
    r = n_match / n_ref if n_ref else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f


def match_notes(ref: Performance, est: Performance, onset_tolerance: float = ONSET_TOLERANCE,
                with_offset: bool = False) -> list[tuple[int, int]]:
    """One-to-one (ref index, est index) pairs: same pitch, onsets within tolerance (mir_eval's matching)."""
    import mir_eval  # deferred: ~1.5 s to import; method code imports this module without scoring

    if not ref.notes or not est.notes:
        return []
    ri, rp, _ = as_arrays(ref)
    ei, ep, _ = as_arrays(est)
    return mir_eval.transcription.match_notes(
        ri, rp, ei, ep, onset_tolerance=onset_tolerance, offset_ratio=0.2 if with_offset else None)


def note_scores(ref: Performance, est: Performance, onset_tolerance: float = ONSET_TOLERANCE) -> dict[str, float]:
    """Note-level P/R/F1 without offsets, with offsets, and with offsets and velocity."""
    import mir_eval  # deferred: ~1.5 s to import; method code imports this module without scoring

    n_ref, n_est = len(ref.notes), len(est.notes)
    out: dict[str, float] = {}
    m_on = len(match_notes(ref, est, onset_tolerance))
    m_off = len(match_notes(ref, est, onset_tolerance, with_offset=True))
    out["note_p"], out["note_r"], out["note_f1"] = _prf(n_ref, n_est, m_on)
    out["note_offset_p"], out["note_offset_r"], out["note_offset_f1"] = _prf(n_ref, n_est, m_off)
    if n_ref and n_est:
        ri, rp, rv = as_arrays(ref)
        ei, ep, ev = as_arrays(est)
        with warnings.catch_warnings():  # a constant velocity makes mir_eval's rescaling fit degenerate
            warnings.simplefilter("ignore")
            p, r, f, _ = mir_eval.transcription_velocity.precision_recall_f1_overlap(
                ri, rp, rv, ei, ep, ev, onset_tolerance=onset_tolerance)
        out["note_offset_velocity_p"], out["note_offset_velocity_r"], out["note_offset_velocity_f1"] = p, r, f
    else:
        p, r, f = _prf(n_ref, n_est, 0)
        out["note_offset_velocity_p"], out["note_offset_velocity_r"], out["note_offset_velocity_f1"] = p, r, f
    return out


def frame_scores(ref: Performance, est: Performance, fps: float = FPS, key: str = "frame") -> dict[str, float]:
    """Frame-level P/R/F1 over (pitch, frame) cells of the key-down roll (`key="sustain"` counts the pedal)."""
    n_frames = int(np.ceil(max(ref.duration, est.duration) * fps)) + 1
    r = to_roll(ref, fps, n_frames)[key] > 0.5
    e = to_roll(est, fps, n_frames)[key] > 0.5
    p, rec, f = _prf(int(r.sum()), int(e.sum()), int((r & e).sum()))
    return {"frame_p": p, "frame_r": rec, "frame_f1": f}


def transcription_scores(ref: Performance, est: Performance, fps: float = FPS) -> dict[str, float]:
    """Everything we report for h: note, note+offset, note+offset+velocity and frame scores."""
    return {**note_scores(ref, est), **frame_scores(ref, est, fps)}


# --- g: performance metrics -------------------------------------------------------------------------------

def _onset_events(perf: Performance, merge_tolerance: float) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Group notes into onset events (chords, with small asynchronies merged): times, pitch features, members."""
    order = sorted(range(len(perf.notes)), key=lambda i: (perf.notes[i].onset, perf.notes[i].pitch))
    groups: list[list[int]] = []
    for i in order:
        if groups and perf.notes[i].onset - perf.notes[groups[-1][0]].onset <= merge_tolerance:
            groups[-1].append(i)
        else:
            groups.append([i])
    times = np.array([perf.notes[g[0]].onset for g in groups])
    # Pitch one-hot plus a lighter chroma term, so an octave slip still costs less than a wrong chord.
    feats = np.zeros((len(groups), N_KEYS + 12))
    for e, g in enumerate(groups):
        for i in g:
            p = perf.notes[i].pitch
            if PIANO_LOW <= p < PIANO_LOW + N_KEYS:
                feats[e, p - PIANO_LOW] = 1.0
            feats[e, N_KEYS + p % 12] += 0.5
    feats /= np.linalg.norm(feats, axis=1, keepdims=True) + 1e-9
    return times, feats, groups


def dtw_align_onsets(ref: Performance, est: Performance, merge_tolerance: float = 0.035) -> Performance:
    """Move each estimated note onto the reference's time line (timing factored out).

    DTW over the two sequences of onset events (cosine cost on pitch-set features) pairs every estimated
    event with reference events; an estimated note takes the onset of the same-pitch note in its best
    matching reference event (the event time otherwise) and keeps its own duration. Only the order and
    content of events then matter, not when they happen.
    """
    return _dtw_aligned(ref, est, merge_tolerance)[0]


def _dtw_aligned(ref: Performance, est: Performance, merge_tolerance: float) -> tuple[Performance, list[int]]:
    """(dtw_align_onsets's result, for each of its notes the index of the estimated note it came from)."""
    import librosa  # deferred: its DTW compiles with numba on first use

    if not ref.notes or not est.notes:
        return Performance(notes=list(est.notes)), list(range(len(est.notes)))
    rt, rf, rg = _onset_events(ref, merge_tolerance)
    et, ef, eg = _onset_events(est, merge_tolerance)
    cost = 1.0 - ef @ rf.T  # (E_est, E_ref)
    _, path = librosa.sequence.dtw(C=cost)
    best: dict[int, int] = {}
    for i, j in path[::-1]:
        if i not in best or cost[i, j] < cost[i, best[i]]:
            best[int(i)] = int(j)
    notes = list(est.notes)
    for e, members in enumerate(eg):
        j = best[e]
        ref_onset_by_pitch = {ref.notes[k].pitch: ref.notes[k].onset for k in rg[j]}
        for i in members:
            n = est.notes[i]
            on = ref_onset_by_pitch.get(n.pitch, rt[j])
            notes[i] = PerformedNote(n.pitch, on, on + (n.offset - n.onset), n.velocity)
    order = sorted(range(len(notes)), key=lambda i: (notes[i].onset, notes[i].pitch))
    return Performance(notes=[notes[i] for i in order]), order


def _median_ioi(perf: Performance, merge_tolerance: float) -> float:
    times, _, _ = _onset_events(perf, merge_tolerance)
    return float(np.median(np.diff(times))) if len(times) > 1 else float("nan")


def _onset_span(perf: Performance) -> float:
    """Seconds from the first onset to the last (nan without notes)."""
    return (max(n.onset for n in perf.notes) - min(n.onset for n in perf.notes)) if perf.notes else float("nan")


def _pearson(ref: np.ndarray, est: np.ndarray) -> float:
    """Pearson r; 0 when the estimate is constant (it predicts no structure), nan when the truth is or n < 3."""
    if len(ref) < 3 or np.std(ref) == 0:
        return float("nan")
    if np.std(est) == 0:
        return 0.0
    return float(np.corrcoef(ref, est)[0, 1])


def expressive_scores(ref: Performance, est: Performance, pairs: list[tuple[int, int]],
                      merge_tolerance: float = 0.035) -> dict[str, float]:
    """What a score can predict of a performance, per note, on (ref index, est index) correspondences -- the
    measures of performance-rendering research (per-note velocity and timing correlations), which reward
    structure rather than matching one reference's random drift:

    velocity_r: Pearson r of velocities; log_ioi_r: of log inter-onset intervals between successive reference
    onsets (chords merged within merge_tolerance); onset_dev_ms: RMS onset deviation after a global linear tempo
    fit (est onset ~ a * ref onset + b); articulation_r / articulation_error: r and mean |difference| of log
    played durations. A constant estimate (e.g. one velocity for every note) gets r = 0."""
    nan = float("nan")
    out = {"velocity_r": nan, "log_ioi_r": nan, "onset_dev_ms": nan, "articulation_r": nan, "articulation_error": nan}
    if len(pairs) < 3:
        return out
    pairs = sorted(pairs, key=lambda p: (ref.notes[p[0]].onset, ref.notes[p[0]].pitch))
    rn, en = [ref.notes[i] for i, _ in pairs], [est.notes[j] for _, j in pairs]
    out["velocity_r"] = _pearson(np.array([n.velocity for n in rn], float), np.array([n.velocity for n in en], float))
    r_on, e_on = np.array([n.onset for n in rn]), np.array([n.onset for n in en])
    if np.ptp(r_on) > 0:
        a, b = np.polyfit(r_on, e_on, 1)
        out["onset_dev_ms"] = float(1000 * np.sqrt(np.mean((e_on - (a * r_on + b)) ** 2)))
    step = np.diff(r_on) > merge_tolerance  # successive onsets that are not the same chord
    if step.sum() >= 3:
        r_ioi, e_ioi = np.diff(r_on)[step], np.maximum(np.diff(e_on)[step], 1e-3)
        out["log_ioi_r"] = _pearson(np.log(r_ioi), np.log(e_ioi))
    r_dur = np.log(np.maximum([n.offset - n.onset for n in rn], 1e-3))
    e_dur = np.log(np.maximum([n.offset - n.onset for n in en], 1e-3))
    out["articulation_r"] = _pearson(r_dur, e_dur)
    out["articulation_error"] = float(np.mean(np.abs(e_dur - r_dur)))
    return out


def pedal_down_frames(perf: Performance, fps: float, n_frames: int) -> np.ndarray:
    """(n_frames,) bool: the sustain pedal is down at frame t (time t / fps); a press never released holds to the end."""
    down = np.zeros(n_frames, bool)
    times = np.arange(n_frames) / fps
    for start, end in _pedal_intervals(perf.pedal, end=float("inf")):
        down |= (times >= start) & (times < end)
    return down


def pedal_scores(ref: Performance, est: Performance, fps: float = FPS) -> dict[str, float]:
    """pedal_f1: frame-level F1 of the sustain-pedal-down state at `fps` frames per second, on the time line of
    each performance as played (frames up to the later of the two ends). Defined only where the truth pedals at
    all: nan when `ref` never presses the pedal (aggregation skips it), so the mean is over pedalled excerpts. An
    estimate without pedal scores 0 there."""
    if not any(ev.down for ev in ref.pedal):
        return {"pedal_f1": float("nan")}
    n_frames = int(np.ceil(max(ref.duration, est.duration) * fps)) + 1
    r, e = pedal_down_frames(ref, fps, n_frames), pedal_down_frames(est, fps, n_frames)
    return {"pedal_f1": _prf(int(r.sum()), int(e.sum()), int((r & e).sum()))[2]}


def performance_scores(ref: Performance, est: Performance, merge_tolerance: float = 0.035) -> dict[str, float]:
    """Everything we report for g (score -> performance) against the true performance.

    note_f1: onsets within 50 ms of the truth (absolute timing); aligned_note_f1: the same after
    `dtw_align_onsets` (timing-invariant); duration_ratio: est/ref span first-to-last onset (>1: too slow);
    ioi_ratio: ratio of median inter-onset intervals; tempo_log_error: |ln duration_ratio|;
    velocity_mae: mean |velocity difference| (MIDI units) on notes matched after alignment; and on those same
    note pairs, `expressive_scores` (velocity_r, log_ioi_r, onset_dev_ms, articulation_r, articulation_error);
    `pedal_scores` (pedal_f1, nan where the truth has no pedal).
    """
    out = {k: v for k, v in note_scores(ref, est).items() if k in ("note_p", "note_r", "note_f1")}
    aligned, source = _dtw_aligned(ref, est, merge_tolerance)
    m = match_notes(ref, aligned)
    out["aligned_note_p"], out["aligned_note_r"], out["aligned_note_f1"] = _prf(len(ref.notes), len(est.notes), len(m))
    ref_span, est_span = _onset_span(ref), _onset_span(est)
    out["duration_ratio"] = est_span / ref_span if ref_span > 0 else float("nan")
    out["tempo_log_error"] = abs(float(np.log(out["duration_ratio"]))) if out["duration_ratio"] > 0 else float("nan")
    ref_ioi, est_ioi = _median_ioi(ref, merge_tolerance), _median_ioi(est, merge_tolerance)
    out["ioi_ratio"] = est_ioi / ref_ioi if ref_ioi > 0 else float("nan")
    if m:
        out["velocity_mae"] = float(np.mean([abs(ref.notes[i].velocity - aligned.notes[j].velocity) for i, j in m]))
    else:
        out["velocity_mae"] = float("nan")
    # per-note correspondences (ref note, est note as played: the alignment only found the pairs)
    out.update(expressive_scores(ref, est, [(i, source[j]) for i, j in m], merge_tolerance))
    out.update(pedal_scores(ref, est))
    return out


# --- aggregation ------------------------------------------------------------------------------------------

def aggregate(rows: list[dict], group_key: str = "collection") -> dict[str, dict[str, float]]:
    """Mean of every numeric field over excerpts: {"all": {...}, "<collection>": {...}}, each with its count n.

    NaNs (e.g. a tempo ratio of a one-note excerpt) are skipped per metric, not per excerpt.
    """
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups["all"].append(row)
        if group_key in row:
            groups[str(row[group_key])].append(row)
    out: dict[str, dict[str, float]] = {}
    for name, members in groups.items():
        # None counts: a NaN read back from strict JSON (null) must give the same keys as the NaN it was
        keys = sorted({k for r in members for k, v in r.items()
                       if v is None or (isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool))})
        means = {}
        for k in keys:
            # None: an undefined value as strict JSON stores it (core.io.jsonable writes NaN as null)
            vals = np.array([np.nan if r[k] is None else float(r[k]) for r in members if k in r], dtype=float)
            vals = vals[np.isfinite(vals)]
            means[k] = float(vals.mean()) if len(vals) else float("nan")
        means["n"] = float(len(members))
        out[name] = means
    return out


def alignment_accuracy(pseudo: Performance, truth: Performance) -> dict[str, float]:
    """How good is pseudo-motion (diagnostics on P, never a training signal): onset F1 at 50 ms, and
    the onset error distribution over notes matched within a generous 500 ms."""
    out = {k: v for k, v in note_scores(truth, pseudo).items() if k in ("note_p", "note_r", "note_f1")}
    pairs = match_notes(truth, pseudo, onset_tolerance=0.5)
    err = np.array([abs(truth.notes[i].onset - pseudo.notes[j].onset) for i, j in pairs]) * 1000.0
    out["onset_median_error_ms"] = float(np.median(err)) if len(err) else float("nan")
    out["onset_within_25ms"] = float(np.mean(err <= 25.0)) if len(err) else 0.0
    out["onset_within_50ms"] = float(np.mean(err <= 50.0)) if len(err) else 0.0
    vel = [abs(truth.notes[i].velocity - pseudo.notes[j].velocity) for i, j in match_notes(truth, pseudo)]
    out["velocity_mae"] = float(np.mean(vel)) if vel else float("nan")
    return out
