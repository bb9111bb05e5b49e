"""The domain names the widgets work with, re-exported from recorders: the episode file, segments, the
robot API's function specs and the teleop bindings.

DESIGN.md section 1: dependencies point one way, widgets -> app -> (models, recorders), and a test
(tests/test_layering.py) holds widgets to it. Widgets that only need a recorders *name* (a type to
annotate with, a constant, a pure function on plain data) import it from here; everything a widget
asks the domain to *do* goes through an app controller (app/record_session.py, app/annotation.py, ...).
Every name is defined in the recorders module it is imported from below; nothing here is heavy
(no MuJoCo, franky or device SDK), so importing it keeps the window's start fast.
"""
from __future__ import annotations

from recorders.episode_file import CONTROL_STREAM, Episode, EpisodeError, open_episode
from recorders.robot_api_spec import API, DIRECTIONS, MAX_DISTANCE_M, Call, FunctionSpec, InvalidCallError
from recorders.segmentation import IDLE
from recorders.teleop import KEY_BINDINGS, SPEED_KEYS, SPEED_LEVELS_M_S, TeleopIntent, intent_from_keys, is_teleop_key
from recorders.teleop_devices import GAMEPAD_HELP, SPACEMOUSE_HELP
from recorders.video_quality import QUALITIES as VIDEO_QUALITIES, QUALITY_CRF

__all__ = [
    # episode files (recorders/episode_file.py)
    "CONTROL_STREAM", "Episode", "EpisodeError", "open_episode",
    # the robot API's vocabulary (recorders/robot_api_spec.py)
    "API", "DIRECTIONS", "MAX_DISTANCE_M", "Call", "FunctionSpec", "InvalidCallError",
    # segments (recorders/segmentation.py)
    "IDLE",
    # teleop keys, speeds and devices (recorders/teleop.py, recorders/teleop_devices.py)
    "KEY_BINDINGS", "SPEED_KEYS", "SPEED_LEVELS_M_S", "TeleopIntent", "intent_from_keys", "is_teleop_key",
    "GAMEPAD_HELP", "SPACEMOUSE_HELP",
    # how a take stores its cameras (recorders/video_quality.py)
    "VIDEO_QUALITIES", "QUALITY_CRF",
]
