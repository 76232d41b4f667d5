"""Cheap checks of a score file before music21 sees it.

music21 is lenient: it reads the first half of a truncated MIDI file as a shorter piece, and takes
random bytes in an ABC file for a tune. These checks refuse such files up front with a message that
says what is wrong (and are bounded in time and memory, unlike a parse of a 500 MB file). They look
at structure only (headers, chunk lengths, terminators); whether the music makes sense is left to
the parser and to `corpus.extract_piece`.
"""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path

DEFAULT_MAX_MB = 20.0  # far above any real score (the largest music21 corpus file is ~6 MB)


class ScoreFileError(ValueError):
    """The file cannot be a usable score; the message says why."""


def check_score_file(path: str | Path, max_mb: float | None = DEFAULT_MAX_MB) -> None:
    """Raise ScoreFileError if `path` is empty, too large, or not a well-formed file of its suffix."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ScoreFileError("empty file")
    if max_mb is not None and size > max_mb * 2**20:
        raise ScoreFileError(f"file is {_megabytes(size)}, over the {max_mb:g} MB limit for a score "
                             "(corpus.max_file_mb); raise the limit to include it")
    suffix = path.suffix.lower()
    if suffix in (".mid", ".midi"):
        _check_midi(path.read_bytes())
    elif suffix == ".mxl":
        _check_mxl(path)
    elif suffix in (".xml", ".musicxml"):
        _check_xml(path.read_bytes()[:4096])
    elif suffix == ".abc":
        _check_abc(_text(path))
    elif suffix == ".krn":
        _check_kern(_text(path))


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 1024:.1f} kB"


def _check_midi(data: bytes) -> None:
    if data[:4] != b"MThd" or len(data) < 14:
        raise ScoreFileError("not a MIDI file (no MThd header)")
    header_len = struct.unpack(">I", data[4:8])[0]
    n_tracks = struct.unpack(">H", data[10:12])[0]
    pos = 8 + header_len
    for track in range(n_tracks):
        if pos + 8 > len(data):
            raise ScoreFileError(f"truncated MIDI file: the header announces {n_tracks} tracks, "
                                 f"the file ends after {track}")
        length = struct.unpack(">I", data[pos + 4:pos + 8])[0]
        if pos + 8 + length > len(data):
            raise ScoreFileError(f"truncated MIDI file: track {track + 1} declares {length} bytes, "
                                 f"only {len(data) - pos - 8} remain")
        pos += 8 + length


def _check_mxl(path: Path) -> None:
    if not zipfile.is_zipfile(path):
        raise ScoreFileError("not a compressed MusicXML (.mxl) file: not a zip archive")
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ScoreFileError(f"damaged .mxl archive ({exc})") from None
    if bad is not None:
        raise ScoreFileError(f"damaged .mxl archive (member {bad} fails its checksum)")


def _check_xml(head: bytes) -> None:
    for bom in (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"):
        head = head.removeprefix(bom)
    text = head.replace(b"\x00", b"").lstrip()
    if not text.startswith(b"<"):
        raise ScoreFileError("not a MusicXML file (it does not start with an XML tag)")


def _text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data:
        raise ScoreFileError("not a text file (it holds NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # old ABC/kern files are often Latin-1
    unprintable = sum(1 for c in text if ord(c) < 32 and c not in "\t\r\n\f")
    if unprintable > 0.01 * len(text):
        raise ScoreFileError("not a text file (binary bytes where text is expected)")
    return text


def _check_abc(text: str) -> None:
    lines = [line.strip() for line in text.splitlines()]
    if not any(line.startswith("K:") for line in lines):
        raise ScoreFileError("not an ABC tune: no K: (key) field, which every ABC tune header ends with")


def _check_kern(text: str) -> None:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("!")]
    if not lines or not lines[0].startswith("**"):
        raise ScoreFileError("not a Humdrum file: the first data line must declare spines (**kern)")
    if not any(all(tok == "*-" for tok in line.split("\t")) for line in lines):
        raise ScoreFileError("truncated kern file: no *- line terminates the spines")
