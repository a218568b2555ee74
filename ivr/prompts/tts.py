"""Draft prompts from text with espeak-ng (Mandarin), converted to what Asterisk
plays: 8 kHz mono 16-bit WAV, loudness-normalised. A draft stands in until
operations staff upload a real recording.

The text goes to espeak-ng on stdin (``--stdin``), never among its arguments:
text starting with ``-`` was taken as an option (``-f/path`` spoke the file)."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

from pydub import AudioSegment

from ivr.errors import ConfigError
from ivr.prompts.audio import to_asterisk_wav, write_prompt

# espeak-ng counts a Chinese character as a word: 150 "words" a minute is 2.5
# characters a second, half the pace of a Mandarin announcer (4-5 a second).
# A draft too slow holds every caller's line longer than the recording that
# replaces it will (at Beijing's peak, about 56 lines per second of prompt).
WORDS_PER_MINUTE = 260


def synthesize(text: str, out: Path, voice: str = "cmn") -> float:
    """Speak ``text`` into ``out`` (8 kHz WAV); returns the duration in seconds."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ConfigError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run([exe, "-v", voice, "-s", str(WORDS_PER_MINUTE), "-w", str(raw), "--stdin"], input=text.encode(),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        audio = to_asterisk_wav(AudioSegment.from_wav(io.BytesIO(raw.read_bytes())))  # pydub leaves a path open
    buf = io.BytesIO()
    audio.export(buf, format="wav")
    write_prompt(out, buf.getvalue())
    return len(audio) / 1000.0
