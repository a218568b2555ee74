"""Draft prompts from text with espeak-ng (Mandarin), converted to what Asterisk
plays: 8 kHz mono 16-bit WAV, loudness-normalised. A draft stands in until
operations staff upload a real recording."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from pydub import AudioSegment

from ivr.errors import ConfigError

ASTERISK_RATE = 8000
TARGET_DBFS = -18.0


def to_asterisk_wav(audio: AudioSegment) -> AudioSegment:
    audio = audio.set_channels(1).set_frame_rate(ASTERISK_RATE).set_sample_width(2)
    if audio.dBFS != float("-inf"):
        audio = audio.apply_gain(TARGET_DBFS - audio.dBFS)
    return audio


def synthesize(text: str, out: Path, voice: str = "cmn") -> float:
    """Speak ``text`` into ``out`` (8 kHz WAV); returns the duration in seconds."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ConfigError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run([exe, "-v", voice, "-s", "150", "-w", str(raw), text], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        audio = to_asterisk_wav(AudioSegment.from_wav(str(raw)))
    out.parent.mkdir(parents=True, exist_ok=True)
    audio.export(str(out), format="wav")
    return len(audio) / 1000.0
