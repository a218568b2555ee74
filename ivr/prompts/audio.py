"""Uploaded recordings are untrusted: identified by their content, decoded in a
child process with limits, written where Asterisk can read them.

- The format comes from the file's first bytes (magic numbers) against an
  allow-list (WAV, MP3, M4A/AAC, OGG/Opus/Vorbis, AMR), never from its name:
  the name's suffix used to pick ffmpeg's demuxer, so a ``.concat`` "recording"
  copied another file (a citizen's voice message) into a prompt.
- ffprobe, then ffmpeg, each run with that demuxer forced (``-f``), only the
  ``file`` protocol, the upload in a private temporary directory, and limits
  set in the child before it starts: CPU seconds, address space, no file
  writes, few descriptors; a wall timeout kills it. The probe refuses more
  than ``MAX_CHANNELS`` channels, a rate over ``MAX_RATE`` and anything over
  ``MAX_SECONDS``; the decoder is capped by ``-t`` too and resamples to 8 kHz
  mono itself, so the engine only ever holds at most 10 minutes of 8 kHz
  audio (9.6 MB).
- The result (8 kHz mono 16-bit WAV, loudness-normalised) is written to a
  temporary file in the target directory and renamed, mode 0644 (Asterisk runs
  as another user); the temporary file is removed on every error path.

``convert_in_child`` runs all of this (probe, decode, normalise) in a Python
worker process at the lowest CPU priority (SCHED_IDLE): the engine's only work is to wait for
the finished WAV, so its event loop and its memory stay out of it.
Every function here blocks: callers on the event loop use ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ivr.errors import AudioRefused, ConfigError

if TYPE_CHECKING:
    from pydub import AudioSegment  # imported where used: the engine never loads it

MAX_SECONDS = 600.0
MAX_CHANNELS = 2
MAX_RATE = 48_000
MIN_SECONDS = 0.2
CHILD_CPU_S = 30
CHILD_MEMORY_BYTES = 1024 * 1024 * 1024
WALL_TIMEOUT_S = 60.0
OUT_RATE = 8000
FILE_MODE = 0o644

# ffmpeg demuxer -> codecs it may carry (ffprobe's codec_name)
ALLOWED = {
    "wav": {"pcm_s16le", "pcm_u8", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_mulaw", "pcm_alaw"},
    "mp3": {"mp3"},
    "aac": {"aac"},
    "mov": {"aac", "mp3"},
    "ogg": {"opus", "vorbis"},
    "amr": {"amr_nb", "amr_wb"},
}
ALLOWED_TEXT = "WAV、MP3、M4A/AAC、OGG/Opus、AMR"


@dataclass(frozen=True, slots=True)
class Converted:
    wav: bytes
    seconds: float
    source_format: str


def sniff(data: bytes) -> str | None:
    """The ffmpeg demuxer for these bytes, or None if the content is not on the allow-list."""
    head = data[:16]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:5] == b"#!AMR":
        return "amr"
    if head[4:8] == b"ftyp":
        return "mov"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:          # ADTS: sync 12 bits, layer 00
            return "aac"
        if head[1] & 0xE0 == 0xE0 and head[1] & 0x06:   # MPEG audio frame sync, layer I-III
            return "mp3"
    return None


def _known_other(data: bytes) -> str:
    """A name for common refused formats, so the message says what was sent."""
    for magic, name in ((b"fLaC", "FLAC"), (b"ffconcat", "ffconcat"), (b"#EXTM3U", "M3U/HLS"),
                        (b"FORM", "AIFF"), (b"\x1aE\xdf\xa3", "Matroska/WebM"), (b"MThd", "MIDI")):
        if data.startswith(magic):
            return name
    return ""


def _limits() -> None:                       # runs in the child, before exec
    os.nice(10)                                          # calls win the CPU over a decoder
    resource.setrlimit(resource.RLIMIT_CPU, (CHILD_CPU_S, CHILD_CPU_S))
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))     # writes only to its pipes
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _worker_command(wall_timeout_s: float) -> list[str]:
    """The Python worker under limits set by prlimit(1) and at low priority rather than a
    preexec_fn: without one, the engine spawns it with vfork, not a fork that
    copies the engine's page tables while holding the interpreter."""
    import sys

    prlimit = shutil.which("prlimit")
    limits = ([prlimit, f"--as={CHILD_MEMORY_BYTES}", f"--cpu={2 * CHILD_CPU_S}", f"--fsize={64 * 1024 * 1024}",
               "--core=0", "--"] if prlimit else [])
    return [*limits, *low_priority(), sys.executable, "-m", "ivr.prompts.audio", f"{wall_timeout_s:g}"]


def low_priority() -> list[str]:
    """A command prefix that runs a child only on CPU time the engine leaves:
    SCHED_IDLE (chrt(1), no privilege needed; inherited by its own children),
    else nice 10. Measured: nice 10 alone still cost calls milliseconds at p99
    on 2 cores, since a niced child keeps its core until the scheduler's next tick."""
    chrt = shutil.which("chrt")
    if chrt:
        return [chrt, "--idle", "0"]
    return [shutil.which("nice") or "nice", "-n", "10"]


def convert_in_child(data: bytes, *, wall_timeout_s: float = WALL_TIMEOUT_S) -> Converted:
    """``convert`` in ``python -m ivr.prompts.audio`` (upload on stdin, WAV on stdout)."""
    try:
        proc = subprocess.run(_worker_command(wall_timeout_s), input=data, capture_output=True,
                              timeout=3 * wall_timeout_s, close_fds=True)
    except subprocess.TimeoutExpired as exc:
        raise AudioRefused(f"音频解码超时（{3 * wall_timeout_s:g} 秒） decoding took too long") from exc
    if proc.returncode == 2:
        raise AudioRefused(proc.stderr.decode(errors="replace").strip()[-500:])
    if proc.returncode != 0:
        raise AudioRefused(f"无法读取该音频 the audio could not be read (worker exit {proc.returncode})")
    head, _, wav = proc.stdout.partition(b"\n")
    meta = json.loads(head)
    return Converted(wav, meta["seconds"], meta["format"])


def _worker_main() -> None:
    import sys

    try:
        conv = convert(sys.stdin.buffer.read(), wall_timeout_s=float(sys.argv[1]))
    except AudioRefused as exc:
        sys.stderr.write(str(exc))
        sys.exit(2)
    sys.stdout.buffer.write(json.dumps({"seconds": conv.seconds, "format": conv.source_format}).encode() + b"\n")
    sys.stdout.buffer.write(conv.wav)


def _child(args: list[str], wall_timeout_s: float) -> bytes:
    try:
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, preexec_fn=_limits, timeout=wall_timeout_s, close_fds=True)
    except subprocess.TimeoutExpired as exc:
        raise AudioRefused(f"音频解码超时（{wall_timeout_s:g} 秒） decoding took too long") from exc
    if proc.returncode != 0:
        why = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise AudioRefused(f"无法读取该音频 the audio could not be read: {why[0][:200]}")
    return proc.stdout


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise ConfigError(f"未安装 {name} {name} is not installed (Debian: apt-get install ffmpeg)")
    return exe


def _probe(path: Path, fmt: str, wall_timeout_s: float) -> dict[str, Any]:
    """ffprobe's JSON (``streams``, ``format``): open, whatever the file holds."""
    out = _child([_tool("ffprobe"), "-v", "error", "-protocol_whitelist", "file", "-f", fmt, "-i", str(path),
                  "-show_entries", "stream=codec_type,codec_name,channels,sample_rate,duration:format=duration",
                  "-of", "json"], wall_timeout_s)
    try:
        return cast("dict[str, Any]", json.loads(out))
    except ValueError as exc:
        raise AudioRefused("无法读取该音频 the audio could not be read") from exc


def _check(info: dict[str, Any], fmt: str) -> None:
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    if len(streams) != 1 or len(info.get("streams", [])) != 1:
        raise AudioRefused(f"须恰好含一条音轨 the file must hold exactly one audio stream "
                           f"(found {len(streams)} audio of {len(info.get('streams', []))})")
    s = streams[0]
    if s.get("codec_name") not in ALLOWED[fmt]:
        raise AudioRefused(f"不支持的音频编码 {s.get('codec_name')} unsupported codec in {fmt}; "
                           f"accepted: {ALLOWED_TEXT}")
    channels, rate = int(s.get("channels") or 0), int(s.get("sample_rate") or 0)
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioRefused(f"声道数 {channels} 超出限制（最多 {MAX_CHANNELS}） too many channels")
    if not 1 <= rate <= MAX_RATE:
        raise AudioRefused(f"采样率 {rate} Hz 超出限制（最高 {MAX_RATE} Hz） sample rate too high")
    for d in (s.get("duration"), info.get("format", {}).get("duration")):
        try:
            seconds = float(d)
        except (TypeError, ValueError):
            continue
        if seconds > MAX_SECONDS:
            raise AudioRefused(_too_long())


def _too_long() -> str:
    return f"录音超过 {MAX_SECONDS / 60:g} 分钟 the recording is longer than {MAX_SECONDS / 60:g} minutes"


def convert(data: bytes, *, wall_timeout_s: float = WALL_TIMEOUT_S) -> Converted:
    """Untrusted bytes -> 8 kHz mono 16-bit WAV, loudness-normalised, or AudioRefused."""
    fmt = sniff(data)
    if fmt is None:
        other = _known_other(data)
        raise AudioRefused(f"不支持的音频格式{f' {other}' if other else ''}，请上传 {ALLOWED_TEXT} "
                           f"unsupported audio format{f' ({other})' if other else ''}; accepted: WAV, MP3, "
                           f"M4A/AAC, OGG/Opus, AMR")
    with tempfile.TemporaryDirectory(prefix="ivr-upload-") as tmp:
        src = Path(tmp) / "upload"
        src.write_bytes(data)
        _check(_probe(src, fmt, wall_timeout_s), fmt)
        raw = _child([_tool("ffmpeg"), "-nostdin", "-v", "error", "-protocol_whitelist", "file", "-f", fmt,
                      "-i", str(src), "-map", "0:a:0", "-t", f"{MAX_SECONDS + 0.5:g}", "-ac", "1",
                      "-ar", str(OUT_RATE), "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"], wall_timeout_s)
    seconds = len(raw) / (2 * OUT_RATE)
    if seconds > MAX_SECONDS:
        raise AudioRefused(_too_long())
    if seconds < MIN_SECONDS:
        raise AudioRefused(f"录音短于 {MIN_SECONDS:g} 秒 the recording is shorter than {MIN_SECONDS:g} s")
    return Converted(normalised_wav(raw), seconds, fmt)


TARGET_DBFS = -18.0


def to_asterisk_wav(audio: AudioSegment) -> AudioSegment:
    """8 kHz mono 16-bit, loudness-normalised: what every prompt is made into."""
    audio = audio.set_channels(1).set_frame_rate(OUT_RATE).set_sample_width(2)
    if audio.dBFS != float("-inf"):
        audio = audio.apply_gain(TARGET_DBFS - audio.dBFS)
    return audio


def normalised_wav(pcm: bytes) -> bytes:
    """8 kHz mono 16-bit PCM -> a WAV file, loudness-normalised as every prompt is."""
    import io

    from pydub import AudioSegment

    audio = to_asterisk_wav(AudioSegment(data=pcm, sample_width=2, frame_rate=OUT_RATE, channels=1))
    out = io.BytesIO()
    audio.export(out, format="wav")
    return out.getvalue()


def write_prompt(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory and a rename, mode 0644;
    the temporary file never outlives an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".wav")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


if __name__ == "__main__":
    _worker_main()
