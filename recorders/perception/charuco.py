"""The ChArUco calibration board: its definition, its image (printed, or a texture in the simulator),
and finding it in a camera image.

A board is a chessboard whose white squares hold ArUco markers (`CharucoBoardSpec`: squares, square
and marker size in metres, marker dictionary and first marker id). Boards with disjoint marker ids
can share one image without being confused, which lets the simulated workcell hold a board on the
table (for the wrist camera) and one on the hand (for the front camera) at once.

    CharucoBoardSpec -> board_image() -> save_board_image(path, dpi) (print) / the sim's texture
    camera RGB + intrinsics -> detect_board() -> BoardDetection: board pose in the camera's optical
                                                 frame, or None with the reason it was not found

Board frame (OpenCV's): origin at the outer corner of the grid that is top-left on the printed
image, x along the columns (right on the image), y along the rows (down), z into the board (away
from whoever looks at its printed side). Poses are `Pose`s (metres, quaternion w, x, y, z); the
intrinsics are the workcell's dict (fx, fy, cx, cy, width, height; optional "distortion", OpenCV's
coefficients). OpenCV is imported only when an image is made or searched.
"""
from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from recorders.perception.hand_eye import pose_from_matrix
from recorders.pose import Pose

_DICTIONARY_NAME = re.compile(r"^DICT_([4-7])X\1_(50|100|250|1000)$")
MIN_CORNERS = 6  # fewer interpolated corners give a pose too noisy to calibrate with
DEFAULT_PIXELS_PER_SQUARE = 100


@dataclass(frozen=True)
class CharucoBoardSpec:
    """A ChArUco board: `squares_x` by `squares_y` squares of `square_m`, markers of `marker_m`."""

    squares_x: int = 7
    squares_y: int = 5
    square_m: float = 0.03
    marker_m: float = 0.022
    dictionary: str = "DICT_4X4_50"  # an OpenCV predefined dictionary, DICT_<n>X<n>_<50|100|250|1000>
    first_marker_id: int = 0  # the markers carry ids first_marker_id, first_marker_id + 1, ...
    margin_squares: float = 0.5  # white border around the grid on the image, in squares

    def __post_init__(self):
        if self.squares_x < 3 or self.squares_y < 3:
            raise ValueError(f"a ChArUco board needs at least 3x3 squares, got {self.squares_x}x{self.squares_y}")
        if not 0 < self.marker_m < self.square_m:
            raise ValueError(f"the marker size must be positive and below the square size ({self.square_m} m), "
                             f"got {self.marker_m}")
        match = _DICTIONARY_NAME.match(self.dictionary)
        if match is None:
            raise ValueError(f"unknown marker dictionary {self.dictionary!r}; use one of OpenCV's "
                             "DICT_<n>X<n>_<50|100|250|1000>, n in 4..7 (e.g. DICT_4X4_50)")
        if self.first_marker_id < 0 or self.first_marker_id + self.n_markers > int(match.group(2)):
            raise ValueError(f"marker ids {self.first_marker_id}..{self.first_marker_id + self.n_markers - 1} do not "
                             f"fit {self.dictionary} ({match.group(2)} markers)")
        if self.margin_squares < 0:
            raise ValueError(f"margin_squares must be >= 0, got {self.margin_squares}")

    @property
    def n_markers(self) -> int:
        return self.squares_x * self.squares_y // 2

    @property
    def marker_ids(self) -> np.ndarray:
        return np.arange(self.first_marker_id, self.first_marker_id + self.n_markers)

    @property
    def grid_size_m(self) -> tuple[float, float]:
        """Width and height of the chessboard grid (without the margin)."""
        return self.squares_x * self.square_m, self.squares_y * self.square_m

    @property
    def outer_size_m(self) -> tuple[float, float]:
        """Width and height of the whole image, margin included (what is printed or textured)."""
        m = 2 * self.margin_squares * self.square_m
        return self.squares_x * self.square_m + m, self.squares_y * self.square_m + m

    @property
    def centre(self) -> np.ndarray:
        """The grid's centre in the board frame."""
        w, h = self.grid_size_m
        return np.array([w / 2, h / 2, 0.0])

    def corner_points(self) -> np.ndarray:
        """(N, 3) the inner chessboard corners in the board frame, in ChArUco corner-id order."""
        xs = np.arange(1, self.squares_x) * self.square_m
        ys = np.arange(1, self.squares_y) * self.square_m
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], axis=1)

    def to_dict(self) -> dict:
        return {"squares_x": self.squares_x, "squares_y": self.squares_y, "square_m": self.square_m,
                "marker_m": self.marker_m, "dictionary": self.dictionary, "first_marker_id": self.first_marker_id,
                "margin_squares": self.margin_squares}

    @staticmethod
    def from_dict(d: dict) -> "CharucoBoardSpec":
        return CharucoBoardSpec(int(d["squares_x"]), int(d["squares_y"]), float(d["square_m"]), float(d["marker_m"]),
                                str(d["dictionary"]), int(d.get("first_marker_id", 0)),
                                float(d.get("margin_squares", 0.5)))


# The two boards of the workcell: one lies on the table in the wrist camera's view (eye-in-hand), one is
# held by the hand facing the front camera (eye-to-hand). Their marker ids differ, so a camera that
# sees both never mixes them up. Print them with `save_board_image`.
TABLE_BOARD = CharucoBoardSpec(7, 5, 0.03, 0.022, "DICT_4X4_50", first_marker_id=0)
HAND_BOARD = CharucoBoardSpec(6, 5, 0.03, 0.022, "DICT_4X4_50", first_marker_id=TABLE_BOARD.n_markers)


@dataclass(frozen=True)
class BoardDetection:
    """What `detect_board` found: the board's pose in the camera, or None and why not."""

    pose: Pose | None  # the board frame in the camera's optical frame
    reason: str  # "" when found; otherwise why not, for the operator
    corner_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # (N,)
    image_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (N, 2) pixels
    object_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (N, 3) board frame, m
    reprojection_px: float = float("nan")  # RMS of the corners' reprojection with `pose`

    @property
    def found(self) -> bool:
        return self.pose is not None


# ---- image -------------------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def _cv_board(board: CharucoBoardSpec):
    import cv2

    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, board.dictionary))
    return cv2.aruco.CharucoBoard((board.squares_x, board.squares_y), board.square_m, board.marker_m,
                                  dictionary, board.marker_ids.astype(np.int32))


def board_image(board: CharucoBoardSpec, pixels_per_square: int = DEFAULT_PIXELS_PER_SQUARE) -> np.ndarray:
    """(H, W) uint8 image of the board with its white margin; a square is exactly `pixels_per_square`
    pixels, so the image spans `board.outer_size_m` at that scale."""
    if pixels_per_square < 8:
        raise ValueError(f"pixels_per_square must be at least 8, got {pixels_per_square}")
    margin = int(round(board.margin_squares * pixels_per_square))
    size = (board.squares_x * pixels_per_square, board.squares_y * pixels_per_square)
    grid = _cv_board(board).generateImage(size, marginSize=0, borderBits=1)
    return np.pad(grid, margin, constant_values=255)


def save_board_image(path: Path, board: CharucoBoardSpec, dpi: int = 300) -> Path:
    """Write the board for printing at 100 % scale: a PNG carrying its resolution, or (".pdf") a
    one-page PDF the size of the board. Check one square with a ruler after printing."""
    path = Path(path)
    pixels_per_square = max(8, int(round(board.square_m / 0.0254 * dpi)))
    image = board_image(board, pixels_per_square)
    real_dpi = pixels_per_square / (board.square_m / 0.0254)  # rounding to whole pixels moves it a little
    suffix = path.suffix.lower()
    if suffix == ".png":
        data = _png_with_resolution(image, real_dpi)
    elif suffix == ".pdf":
        data = _pdf(image, real_dpi)
    else:
        raise ValueError(f"a board image is written as .png or .pdf, not {path.suffix or 'no suffix'!r}")
    path.write_bytes(data)
    return path


def board_png(board: CharucoBoardSpec, pixels_per_square: int = DEFAULT_PIXELS_PER_SQUARE) -> bytes:
    """The board image as PNG bytes (the simulator's texture)."""
    return _png_with_resolution(board_image(board, pixels_per_square), pixels_per_square / (board.square_m / 0.0254))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_with_resolution(gray: np.ndarray, dpi: float) -> bytes:
    """An 8-bit grey PNG with a pHYs chunk (pixels per metre), so printers keep the board's size."""
    h, w = gray.shape
    raw = b"".join(b"\x00" + gray[r].tobytes() for r in range(h))  # filter type 0 per row
    ppm = int(round(dpi / 0.0254))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + _png_chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1))
            + _png_chunk(b"IDAT", zlib.compress(raw, 9)) + _png_chunk(b"IEND", b""))


def _pdf(gray: np.ndarray, dpi: float) -> bytes:
    """A one-page PDF whose page is the image at `dpi` (1 pt = 1/72 inch)."""
    h, w = gray.shape
    pw, ph = w * 72.0 / dpi, h * 72.0 / dpi
    stream = zlib.compress(gray.tobytes(), 9)
    content = f"q {pw:.4f} 0 0 {ph:.4f} 0 0 cm /Im0 Do Q".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {pw:.4f} {ph:.4f}] /Resources << /XObject << /Im0 4 0 R >> >> "
        f"/Contents 5 0 R >>".encode(),
        f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray /BitsPerComponent 8 "
        f"/Interpolate false /Filter /FlateDecode /Length {len(stream)} >>\nstream\n".encode()
        + stream + b"\nendstream",
        f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


# ---- detection ---------------------------------------------------------------------------------------
def camera_matrix(intrinsics: dict) -> tuple[np.ndarray, np.ndarray]:
    """(3, 3) K and the distortion coefficients of a workcell's intrinsics dict."""
    k = np.array([[intrinsics["fx"], 0.0, intrinsics["cx"]],
                  [0.0, intrinsics["fy"], intrinsics["cy"]],
                  [0.0, 0.0, 1.0]])
    dist = np.asarray(intrinsics.get("distortion") or np.zeros(5), dtype=float)
    return k, dist


def detect_board(rgb: np.ndarray, intrinsics: dict, board: CharucoBoardSpec,
                 min_corners: int = MIN_CORNERS) -> BoardDetection:
    """Find `board` in an (H, W, 3) uint8 RGB image (or (H, W) grey) and its pose in the camera.

    The ChArUco corners interpolated from the detected markers give the pose by planar PnP (IPPE),
    refined by Levenberg-Marquardt on their reprojection. Returns a detection with `pose` None and a
    reason when the board is not seen, shows fewer than `min_corners` corners, or only collinear ones.
    """
    import cv2

    if rgb.ndim == 3:
        gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    else:
        gray = np.ascontiguousarray(rgb)
    cv_board = _cv_board(board)
    detector = cv2.aruco.CharucoDetector(cv_board)
    corners, ids, marker_corners, marker_ids = detector.detectBoard(gray)
    n_markers = 0 if marker_ids is None else int(np.isin(np.ravel(marker_ids), board.marker_ids).sum())
    if ids is None or len(ids) == 0:
        why = "no marker of the board is visible" if n_markers == 0 else \
            f"{n_markers} marker(s) of the board seen, but no chessboard corner between them"
        return BoardDetection(None, why)
    ids = np.ravel(ids).astype(int)
    image_points = np.asarray(corners, dtype=float).reshape(-1, 2)  # (N, 2); OpenCV 4 gives (N, 1, 2)
    object_points = board.corner_points()[ids]  # (N, 3)
    if len(ids) < min_corners:
        return BoardDetection(None, f"only {len(ids)} board corner(s) seen; at least {min_corners} are needed "
                                    "(move the camera so more of the board is in view)", ids, image_points,
                              object_points)
    if cv_board.checkCharucoCornersCollinear(ids.astype(np.int32).reshape(-1, 1)):
        return BoardDetection(None, "the board corners seen lie on one line; show more of the board", ids,
                              image_points, object_points)
    k, dist = camera_matrix(intrinsics)
    ok, rvec, tvec = cv2.solvePnP(object_points, image_points, k, dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        return BoardDetection(None, "the board's pose could not be computed from its corners", ids, image_points,
                              object_points)
    rvec, tvec = cv2.solvePnPRefineLM(object_points, image_points, k, dist, rvec, tvec)
    projected, _ = cv2.projectPoints(object_points, rvec, tvec, k, dist)
    rms = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - image_points) ** 2, axis=1))))
    rot, _ = cv2.Rodrigues(rvec)
    return BoardDetection(pose_from_matrix(rot, np.ravel(tvec)), "", ids, image_points, object_points, rms)


def draw_detection(rgb: np.ndarray, detection: BoardDetection, intrinsics: dict,
                   board: CharucoBoardSpec) -> np.ndarray:
    """A copy of `rgb` with the detected corners (green) and, when the pose is known, the board's axes
    (x red, y green, z blue), for the GUI's live view while calibrating."""
    import cv2

    out = np.ascontiguousarray(rgb).copy()
    radius = max(2, out.shape[1] // 200)
    for u, v in detection.image_points:
        cv2.circle(out, (int(round(u)), int(round(v))), radius, (0, 220, 0), -1)
    if detection.pose is not None:
        k, dist = camera_matrix(intrinsics)
        rot = detection.pose.rotation_matrix()
        rvec, _ = cv2.Rodrigues(rot)
        cv2.drawFrameAxes(out, k, dist, rvec, detection.pose.xyz, 2 * board.square_m, max(1, radius // 2))
    return out
