"""Synthetic call recordings: 8 kHz 16-bit PCM WAV whose sound follows the conversation's turns.

While the assistant speaks there is a 220 Hz voice-like tone, while the customer speaks a 440 Hz one
(each with a weak third harmonic and a ~4 Hz syllable-rate amplitude modulation, so it sounds like
two alternating speakers); between turns there is silence. Kinds, as Vapi serves them:

- ``mono``: both speakers mixed (``recordingUrl`` / ``recording.mono.combinedUrl``)
- ``assistant`` / ``customer``: one speaker only
- ``stereo``: two channels, customer left, assistant right (``stereoRecordingUrl``)
- ``video``: never recorded in this dataset

The length equals the call's ``endedAt - startedAt`` to the sample, and the bytes are a pure function
of the turns (no randomness, no timestamps in the header), so the same call always hashes the same.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Sequence

import numpy as np

from sandbox.world.conversations import Turn

RATE = 8000
BOT_HZ = 220.0
USER_HZ = 440.0
KINDS = ("mono", "stereo", "customer", "assistant", "video")
_AMPLITUDE = 0.3  # of full scale per speaker, so an overlap (an interruption) never clips
_FADE = 80  # samples (10 ms) of fade in/out, avoiding clicks at turn edges


# 220 Hz, 440 Hz (and their third harmonics) and the 4 Hz syllable rate all complete whole cycles in
# 2000 samples at 8 kHz, so one period of each is tabulated and tiled instead of calling sin per sample.
_PERIOD = 2000
_T = np.arange(_PERIOD) / RATE
_TONE = {hz: ((np.sin(2 * np.pi * hz * _T) + 0.25 * np.sin(2 * np.pi * 3 * hz * _T)) * (_AMPLITUDE / 1.25))
         .astype(np.float32) for hz in (BOT_HZ, USER_HZ)}
_SYLLABLES = (0.65 + 0.35 * np.sin(2 * np.pi * 4.0 * _T)).astype(np.float32)
_SHIFT = 413  # samples of syllable-phase offset between consecutive turns (about 1.3 rad)


def tracks(turns: Sequence[Turn], duration_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """The (assistant, customer) float32 tracks in [-1, 1], ``duration_ms * 8`` samples each."""
    n = duration_ms * RATE // 1000
    reps = n // _PERIOD + 2
    tones = {hz: np.tile(table, reps) for hz, table in _TONE.items()}
    syllables = np.tile(_SYLLABLES, reps)
    bot = np.zeros(n, dtype=np.float32)
    user = np.zeros(n, dtype=np.float32)
    for i, turn in enumerate(turns):
        lo = max(0, turn.start_ms * RATE // 1000)
        hi = min(n, turn.end_ms * RATE // 1000)
        if hi <= lo:
            continue
        target, hz = (bot, BOT_HZ) if turn.role == "bot" else (user, USER_HZ)
        shift = (i * _SHIFT) % _PERIOD
        segment = tones[hz][lo:hi] * syllables[lo + shift:hi + shift]
        fade = min(_FADE, (hi - lo) // 2)
        if fade:
            ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
            segment[:fade] *= ramp
            segment[len(segment) - fade:] *= ramp[::-1]
        target[lo:hi] += segment
    return bot, user


def _pcm(track: np.ndarray) -> np.ndarray:
    return np.round(np.clip(track, -1.0, 1.0) * 32767).astype("<i2")


def _wav(frames: np.ndarray, channels: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(frames.tobytes())
    return buf.getvalue()


def render_wav(turns: Sequence[Turn], duration_ms: int, kind: str) -> bytes | None:
    """The WAV bytes of one recording ``kind`` (None for ``video``: not recorded)."""
    if kind not in KINDS:
        raise ValueError(f"unknown recording kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "video":
        return None
    bot, user = tracks(turns, duration_ms)
    if kind == "mono":
        return _wav(_pcm(bot + user), 1)
    if kind == "assistant":
        return _wav(_pcm(bot), 1)
    if kind == "customer":
        return _wav(_pcm(user), 1)
    return _wav(_stereo(bot, user), 2)


def _stereo(bot: np.ndarray, user: np.ndarray) -> np.ndarray:
    frames = np.empty(2 * len(bot), dtype="<i2")
    frames[0::2] = _pcm(user)  # left: customer
    frames[1::2] = _pcm(bot)  # right: assistant
    return frames


def render_all(turns: Sequence[Turn], duration_ms: int) -> dict[str, bytes]:
    """Every recorded kind at once (the tracks are synthesised a single time)."""
    bot, user = tracks(turns, duration_ms)
    return {"mono": _wav(_pcm(bot + user), 1), "stereo": _wav(_stereo(bot, user), 2),
            "customer": _wav(_pcm(user), 1), "assistant": _wav(_pcm(bot), 1)}


def wav_duration(data: bytes) -> float:
    """Seconds of audio in WAV ``data``."""
    with wave.open(io.BytesIO(data), "rb") as w:
        return w.getnframes() / w.getframerate()
