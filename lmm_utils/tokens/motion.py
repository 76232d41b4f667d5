"""M tokens: a performance as MIDI-like events (Oore et al. 2018, "performance RNN" vocabulary).

    <bos> vel:20 on:60 on:64 shift:25 off:60 pedal:down shift:100 shift:12 off:64 pedal:up <eos>

Quantization (the round trip is exact up to it, see `quantize`):
  * times on a grid of `time_step` seconds (default 10 ms); a gap longer than `max_shift` steps is
    written as several `shift:` tokens;
  * a key is held at least one step (a note whose offset rounds onto its onset is lengthened);
  * velocity in `velocity_bins` uniform bins over 1..127, decoded to the bin's centre; `vel:` is
    written only when the bin changes;
  * pitches 0..127 (the full MIDI range, so nothing a score holds is dropped).
At one instant events go: note-offs, pedal, then note-ons (low to high), so a re-struck key decodes
right. Same-pitch notes that overlap (a re-strike before the release, impossible on a real key) are
re-paired first-in-first-out: the k-th press of a key gets its k-th release.
"""
from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence

from lmm_utils.core.motion import PedalEvent, Performance, PerformedNote
from lmm_utils.tokens import Tokenizer


class MotionTokenizer(Tokenizer):
    modality = "M"

    def __init__(self, time_step: float = 0.01, max_shift: int = 100, velocity_bins: int = 32):
        self.time_step = float(time_step)
        self.max_shift = int(max_shift)
        self.velocity_bins = int(velocity_bins)
        names = (
            [f"shift:{i}" for i in range(1, self.max_shift + 1)]
            + [f"on:{p}" for p in range(128)]
            + [f"off:{p}" for p in range(128)]
            + [f"vel:{b}" for b in range(self.velocity_bins)]
            + ["pedal:down", "pedal:up"]
        )
        super().__init__(names)

    def config(self) -> dict:
        return dict(time_step=self.time_step, max_shift=self.max_shift, velocity_bins=self.velocity_bins)

    # -- quantization -------------------------------------------------------------------------
    def _step(self, t: float) -> int:
        return max(0, int(round(t / self.time_step)))

    def velocity_bin(self, v: int) -> int:
        return min(self.velocity_bins - 1, max(0, (int(v) - 1) * self.velocity_bins // 127))

    def bin_velocity(self, b: int) -> int:
        # centre of the velocities 1..127 that fall in bin b (same formula inverted)
        lo = next(v for v in range(1, 128) if self.velocity_bin(v) == b)
        hi = max(v for v in range(1, 128) if self.velocity_bin(v) == b)
        return (lo + hi) // 2

    def _steps(self, n: PerformedNote) -> tuple[int, int]:
        on = self._step(n.onset)
        return on, max(on + 1, self._step(n.offset))

    def quantize(self, perf: Performance) -> Performance:
        dt = self.time_step
        by_pitch: dict[int, list] = defaultdict(list)
        for n in perf.notes:
            by_pitch[n.pitch].append((*self._steps(n), self.bin_velocity(self.velocity_bin(n.velocity))))
        notes = []
        for pitch, group in by_pitch.items():
            # k-th press pairs with k-th release, as decoding does (matters only for overlapping re-strikes)
            ons = sorted((on, v) for on, _, v in group)
            offs = sorted(off for _, off, _ in group)
            notes += [PerformedNote(pitch, on * dt, off * dt, v) for (on, v), off in zip(ons, offs)]
        pedal = [PedalEvent(self._step(p.time) * dt, p.down) for p in perf.pedal]
        return Performance(sorted(notes, key=_note_order), sorted(pedal, key=lambda e: e.time))

    # -- encode / decode ----------------------------------------------------------------------
    def encode(self, perf: Performance) -> list[int]:
        events = []  # (step, order, name-or-velocity-bin)
        for n in perf.notes:
            if not 0 <= n.pitch <= 127:
                raise ValueError(f"pitch {n.pitch} outside 0..127")
            on, off = self._steps(n)
            events.append((off, 0, n.pitch, f"off:{n.pitch}", None))
            events.append((on, 2, n.pitch, f"on:{n.pitch}", self.velocity_bin(n.velocity)))
        for i, p in enumerate(sorted(perf.pedal, key=lambda e: e.time)):
            events.append((self._step(p.time), 1, i, "pedal:down" if p.down else "pedal:up", None))
        events.sort(key=lambda e: e[:3])

        out, now, vel = ["<bos>"], 0, None
        for step, _, _, name, vbin in events:
            gap = step - now
            while gap > 0:
                out.append(f"shift:{min(gap, self.max_shift)}")
                gap -= self.max_shift
            now = step
            if vbin is not None and vbin != vel:
                vel = vbin
                out.append(f"vel:{vel}")
            out.append(name)
        out.append("<eos>")
        return self.ids(out)

    def decode(self, ids: Sequence[int]) -> Performance:
        """Tokens -> performance. Tolerant: an off without a held key is skipped, a key still held at
        the end is released at the last time (at least one step after its onset)."""
        dt = self.time_step
        now, vel = 0, self.bin_velocity(self.velocity_bin(64))
        held: dict[int, deque] = defaultdict(deque)  # pitch -> (onset step, velocity), FIFO
        notes, pedal = [], []
        for name in self.names(self.strip(ids)):
            kind, _, val = name.partition(":")
            if kind == "shift":
                now += int(val)
            elif kind == "vel":
                vel = self.bin_velocity(int(val))
            elif kind == "on":
                held[int(val)].append((now, vel))
            elif kind == "off":
                if held[int(val)]:
                    on, v = held[int(val)].popleft()
                    notes.append(PerformedNote(int(val), on * dt, max(now, on + 1) * dt, v))
            elif kind == "pedal":
                pedal.append(PedalEvent(now * dt, val == "down"))
        for pitch, queue in held.items():
            for on, v in queue:
                notes.append(PerformedNote(pitch, on * dt, max(now, on + 1) * dt, v))
        return Performance(sorted(notes, key=_note_order), pedal)


def _note_order(n: PerformedNote) -> tuple:
    return (n.onset, n.pitch, n.offset)
