"""The simulated workcell's MuJoCo side: scene building from franky-sim's FR3 model, world state,
cameras, and the franky-sim server process.

Importing this package chooses MuJoCo's rendering backend: MuJoCo reads MUJOCO_GL once, when it is
first imported, and without it a headless process aborts on the first render ("an OpenGL platform
library has not been loaded"). Every module here that imports MuJoCo (and recorders/arms/sim_arm.py)
imports this package first, so a workcell opened from plain Python renders as it does from the CLI.
EGL renders without a display; a caller that chose another backend keeps it.
"""
import os

os.environ.setdefault("MUJOCO_GL", "egl")
