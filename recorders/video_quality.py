"""A take's video quality: how its camera streams are stored, as plain settings (no PyAV here, so the
CLI and the episode reader load it for free; recorders/video_codec.py does the coding).

  lossless   every frame as recorded, one Blosc-LZ4 chunk per frame (format version 1's layout):
             exact renders for training on simulated cameras, ~1 MB per noisy 640x480 colour frame
  high | standard | small   colour as H.264 (libx264, CRF 18 | 23 | 28, 4:2:0 or for small frames 4:4:4,
             no B-frames, a keyframe every `GOP` frames) and depth as FFV1 (lossless, 16 bit, every
             frame a keyframe)
`encoding_for` gives the codec settings a stream is written with; they are stored with the stream.
"""
from __future__ import annotations

QUALITY_CRF = {"high": 18, "standard": 23, "small": 28}
QUALITIES = ("lossless", *QUALITY_CRF)
DEFAULT_DEVICE_QUALITY = "standard"  # real cameras: noisy frames that lossless storage barely shrinks
DEFAULT_RENDERED_QUALITY = "lossless"  # simulated cameras: train on exactly what the policy sees live
GOP = 10  # colour frames from one keyframe to the next: a seek decodes 5.5 on average (at 30 fps, a third
# of a second holds a keyframe; a noisy 640x480 camera grows by ~2% against 15)
SMALL_FRAME_PIXELS = 320 * 240  # below this colour is coded at full resolution (4:4:4)
PRESET = "veryfast"  # libx264: 3-4 ms a noisy 640x480 frame on one core, half ultrafast's size


class VideoCodecError(Exception):
    """A stream cannot be encoded or decoded (unknown codec, damaged packet); one line."""


def check_quality(quality: str) -> str:
    if quality not in QUALITIES:
        raise ValueError(f"video quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
    return quality


def encoding_for(kind: str, shape: tuple[int, ...], quality: str) -> dict | None:
    """How a stream of `kind` (rgb | depth | ...) with sample `shape` is stored at `quality`:
    None for frames as recorded, else the codec settings written with the stream."""
    check_quality(quality)
    if quality == "lossless" or kind not in ("rgb", "depth"):
        return None
    if kind == "depth":
        return {"codec": "ffv1", "pix_fmt": "gray16le", "gop": 1, "options": {"level": "1", "coder": "rice"}}
    h, w = shape[:2]
    # 4:2:0 halves the colour resolution (mean error 1.8 levels on a 640x480 render before any coding)
    # and needs even sides; full-colour 4:4:4 costs about as many bytes but 2-3x the decoding time, so
    # it is kept for small frames, where a cube is a few pixels wide and decoding is cheap anyway
    small = h * w < SMALL_FRAME_PIXELS or h % 2 or w % 2
    pix_fmt = "yuv444p" if small else "yuv420p"
    return {"codec": "h264", "encoder": "libx264", "pix_fmt": pix_fmt, "gop": GOP, "crf": QUALITY_CRF[quality],
            "options": {"crf": str(QUALITY_CRF[quality]), "preset": PRESET, "tune": "zerolatency", "bf": "0"}}


def describe(encoding: dict | None) -> str:
    """A few words for `inspect`: "raw", "h264 crf 23", "ffv1 (lossless)"."""
    if encoding is None:
        return "raw"
    if encoding["codec"] == "ffv1":
        return "ffv1 (lossless)"
    return f"{encoding['codec']} crf {encoding.get('crf', '?')}"
