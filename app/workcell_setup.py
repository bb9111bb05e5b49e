"""How a session opens its workcell: the robot kind, its cameras, where object poses come from, and
the per-workcell folder that keeps what the operator set up (cameras, calibration, taught scene).

    WorkcellSetup (GUI choices, or --camera / --objects) + DATA/workcells/<kind>/
        cameras.json      which RealSense camera is front / wrist, resolution, rate (recorders/cell/camera_rig.py)
        calibration.json  camera mounts and the workspace box (recorders/perception/calibration.py)
        scene.json        the objects and targets taught by clicking (recorders/perception/taught_scene.py)
    -> open_setup_workcell(kind, spec, control_hz, host, setup)
        -> the registry's workcell (recorders/cell/registry.py), with the RealSense rig on a real arm
           and the workspace box of its calibration in the safety layer
        -> wrapped by the perception (recorders/perception/perceived_workcell.py) when objects are
           perceived: always on a real arm (it has no other source), on request in the simulator

Used by the Record and Run sessions and the record / run / eval commands, so every entry point opens a
workcell the same way. Heavy modules (MuJoCo, franky, pyrealsense2, OpenCV) load only when opened.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from recorders.arms.base import ArmError
from recorders.cell.camera_rig import RIG_FILE, CameraRig, CameraRigError  # noqa: F401 - CameraRigError: for widgets
from recorders.cell.registry import workcell_kind

CAMERA_SOURCES = ("sim", "realsense", "none")  # sim: the workcell renders its own cameras
OBJECT_SOURCES = ("true", "perceived")  # true: the simulator's poses; perceived: the tracker on the cameras
WORKCELLS_FOLDER = "workcells"


@dataclass(frozen=True)
class WorkcellSetup:
    camera: str = "sim"
    objects: str = "true"
    rig: CameraRig | None = None  # None: the rig saved in the folder (or the only camera connected)
    folder: Path | None = None  # the per-workcell folder; None: nothing saved or loaded

    def __post_init__(self):
        if self.camera not in CAMERA_SOURCES:
            raise ValueError(f"camera must be one of {', '.join(CAMERA_SOURCES)}, got {self.camera!r}")
        if self.objects not in OBJECT_SOURCES:
            raise ValueError(f"objects must be one of {', '.join(OBJECT_SOURCES)}, got {self.objects!r}")


def is_simulated(kind: str) -> bool:
    """The kind's scene is simulated (rendered cameras, the simulator's object poses available)."""
    return workcell_kind(kind).simulated


def workcell_folder(data_dir: Path, kind: str) -> Path:
    """Where the set-up of the `kind` workcell is kept (created on first save)."""
    return Path(data_dir) / WORKCELLS_FOLDER / kind


def default_setup(kind: str, data_dir: Path | None = None, camera: str | None = None,
                  objects: str | None = None) -> WorkcellSetup:
    """A real arm streams RealSense cameras and perceives its objects; a simulated cell renders its
    cameras and knows its objects, unless told otherwise."""
    simulated = workcell_kind(kind).simulated
    return WorkcellSetup(camera=camera or ("sim" if simulated else "realsense"),
                         objects=objects or ("true" if simulated else "perceived"),
                         folder=None if data_dir is None else workcell_folder(data_dir, kind))


def check_setup(kind: str, setup: WorkcellSetup) -> None:
    """ValueError with one line when the set-up cannot work with this kind of workcell."""
    simulated = workcell_kind(kind).simulated
    if simulated and setup.camera == "realsense":
        raise ValueError(f"the {kind} workcell renders its own cameras; RealSense cameras need --robot franky")
    if not simulated and setup.camera == "sim":
        raise ValueError("a real arm has no rendered cameras: use RealSense cameras (--camera realsense) or none")
    if not simulated and setup.objects == "true":
        raise ValueError("a real arm has no simulator to ask where objects are: objects are perceived")
    if setup.objects == "perceived" and setup.camera == "none":
        raise ValueError("perceived objects need cameras")


def saved_rig(setup: WorkcellSetup) -> CameraRig:
    if setup.rig is not None:
        return setup.rig
    path = None if setup.folder is None else setup.folder / RIG_FILE
    return CameraRig.from_json(path.read_text()) if path is not None and path.exists() else CameraRig()


def save_rig(folder: Path, rig: CameraRig) -> None:
    from recorders.atomic_files import write_text_atomic

    write_text_atomic(folder / RIG_FILE, rig.to_json())


def load_calibration(setup: WorkcellSetup):
    """The workcell's calibration (recorders/perception/calibration.py), or None when it has none."""
    if setup.folder is None:
        return None
    from recorders.perception.calibration import load_calibration as load

    return load(setup.folder)


def open_setup_workcell(kind: str, spec, control_hz: float, host: str | None, setup: WorkcellSetup,
                        device_factory: Callable[..., object] | None = None, perceive: bool = True):
    """Open the workcell of `kind` as `setup` says; ArmError / ValueError with one line if it cannot.
    `perceive=False`: without the perception wrapper (calibration needs only the arm and cameras)."""
    from recorders.cell.registry import open_workcell

    check_setup(kind, setup)
    entry = workcell_kind(kind)
    options: dict = {"host": host or ""} if entry.needs_ip else {}
    calibration = load_calibration(setup)
    if calibration is not None and calibration.workspace is not None:
        options["safety"] = calibration.workspace.limits()
    perceived = perceive and setup.objects == "perceived"
    if perceived and spec is not None and entry.simulated:
        from recorders.perception.perceived_workcell import perceived_scene_spec

        spec = perceived_scene_spec(spec)  # depth and a resolution the tracker needs
    if not entry.simulated:
        spec = _taught_spec(setup)
        if setup.camera == "realsense":
            options["cameras"] = _open_realsense(setup, calibration, device_factory)
    cell = open_workcell(kind, spec, control_hz, **options)
    if not perceived:
        return cell
    try:
        return _perceive(cell, setup, entry.simulated, calibration)
    except BaseException:
        cell.close()
        raise


def _open_realsense(setup: WorkcellSetup, calibration, device_factory):
    from recorders.cell.camera_rig import open_rig
    from recorders.realsense_cameras import RealSenseCamera, list_cameras

    if device_factory is None:
        found = list_cameras()
        if not found:
            raise ArmError(f"RealSense: {found.reason}")
        connected, device_factory = [c.serial for c in found], RealSenseCamera
    else:
        connected = list(getattr(device_factory, "connected", ()))
    mounts = {} if calibration is None else calibration.mounts()
    return open_rig(saved_rig(setup), connected, mounts, device_factory)


def _taught_spec(setup: WorkcellSetup):
    """The scene a real workcell was taught (objects and targets), or None: nothing taught yet."""
    if setup.folder is None:
        return None
    from recorders.perception.taught_scene import load_taught_scene

    taught = load_taught_scene(setup.folder)
    return None if taught is None else taught.scene_spec()


def _perceive(cell, setup: WorkcellSetup, simulated: bool, calibration):
    """`cell` with perceived objects: the cameras placed by the workcell's calibration (a simulated cell
    without one is calibrated once per process, so no camera pose comes from the simulator), the objects
    taught by clicking (a simulated scene clicks where its true poses project, once, then only images)."""
    from recorders.perception.perceived_workcell import PerceivedWorkcell, taught_by_clicks
    from recorders.perception.taught_scene import TaughtScene, load_taught_scene

    if simulated:
        from recorders.perception.calibration_procedure import simulated_camera_mounts

        mounts = calibration.mounts() if calibration is not None and calibration.cameras else simulated_camera_mounts()
        return taught_by_clicks(cell, mounts)
    taught = None if setup.folder is None else load_taught_scene(setup.folder)
    return PerceivedWorkcell(cell, taught or TaughtScene())


def taught_instance(setup: WorkcellSetup, instruction: str, oracle: bool):
    """A run on a real arm: `instruction`, for a learned planner, in the scene the workcell was taught
    (recorders/task_suite.py free_instance). ValueError with one line when it cannot be run."""
    from recorders.task_suite import free_instance

    if oracle:
        raise ValueError("a real arm has no task of the suite and so no oracle program: choose a learned planner "
                         "and type the instruction (or record a written program with record --program)")
    text = " ".join(instruction.split())
    if not text:
        raise ValueError("type the instruction for the planner")
    spec = _taught_spec(setup)
    if spec is None or not (spec.cubes or spec.zones):
        raise ValueError("the workcell knows no objects yet: teach them in Record (Objects and targets) first")
    return free_instance(spec, text)


def setup_opener(kind: str, objects: str | None = None, camera: str | None = None, data_dir: Path | None = None,
                 host: str | None = None) -> Callable:
    """A `cell_factory(robot, spec, control_hz)` for the record / run / eval code paths that opens
    workcells as the command line's --objects / --camera say."""
    setup = default_setup(kind, data_dir, camera, objects)
    check_setup(kind, setup)

    def open_cell(robot: str, spec, control_hz: float = 10.0):
        return open_setup_workcell(robot, spec, control_hz, host, setup)
    return open_cell


def calibration_opener(data_dir: Path | None, camera: str | None = None) -> Callable:
    """`open_cell(kind, spec, control_hz=10, **options)` for `calibrate`: a simulated cell as the registry
    opens it, a real arm with its RealSense rig (from the workcell's folder) and without perception."""
    from recorders.cell.registry import open_workcell

    def open_cell(kind: str, spec, control_hz: float = 10.0, **options):
        if workcell_kind(kind).simulated:
            return open_workcell(kind, spec, control_hz, **options)
        setup = default_setup(kind, data_dir, camera or "realsense")
        return open_setup_workcell(kind, spec, control_hz, options.get("host"), setup, perceive=False)
    return open_cell
