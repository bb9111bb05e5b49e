"""The Record workspace's capture-device box: which cameras the workcell streams, where object poses
come from, which microphone a take records, and how each camera is doing.

It renders the session's snapshot (the RealSense cameras and microphones its last scan found, the
status of every camera) and emits the operator's choices; the Record panel hands them to the session.

    Cameras   [rendered | RealSense | none]   front [serial]  wrist [serial]  [640x480] [30 fps]
    Objects   [simulator's truth | perceived by the cameras]                  [Apply (reconnects)]
    Sound     [off | microphone ...]                                           [Rescan]
    Video     [automatic | high | standard | small | lossless]   (from the next take)
    camera | fps | dropped | status
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget, QTableWidgetItem,
)

from app.domain import QUALITY_CRF, VIDEO_QUALITIES
from app.workcell_setup import CameraRig, CameraRigError, WorkcellSetup, is_simulated, workcell_folder

CAMERA_CHOICES = (("rendered by the simulator", "sim"), ("RealSense", "realsense"), ("none", "none"))
OBJECT_CHOICES = (("the simulator's truth", "true"), ("perceived by the cameras", "perceived"))
SIZES = ("640x480", "848x480", "424x240", "1280x720")
RATES = ("30", "15", "60")
NO_CAMERA = "(none)"
VIDEO_CHOICES = (("automatic: H.264 for RealSense, as rendered in simulation", None),
                 *((f"{q}: H.264 CRF {QUALITY_CRF[q]}, depth lossless", q) for q in VIDEO_QUALITIES if q in QUALITY_CRF),
                 ("lossless: every frame as recorded (large)", "lossless"))


class CaptureDevicesBox(QGroupBox):
    setup_chosen = Signal(object)  # WorkcellSetup for the next connection
    microphone_chosen = Signal(object, str)  # PortAudio index (None: no sound), its name
    video_quality_chosen = Signal(object)  # a quality of recorders/video_quality.py, None: automatic
    rescan_requested = Signal()

    def __init__(self, parent=None):
        super().__init__("Cameras, objects and sound", parent)
        self.camera_source = _combo(CAMERA_CHOICES)
        self.camera_source.setToolTip("Rendered: the simulated workcell's own cameras. RealSense: the cameras on a "
                                      "real arm, chosen by serial number")
        self.front, self.wrist = QComboBox(), QComboBox()
        self.front.setToolTip("The fixed camera looking at the table")
        self.wrist.setToolTip("The camera on the hand")
        self.size, self.rate = QComboBox(), QComboBox()
        self.size.addItems(SIZES)
        self.rate.addItems(RATES)
        self.objects = _combo(OBJECT_CHOICES)
        self.objects.setToolTip("Where the robot API's object poses come from: the simulator (privileged), or the "
                                "tracker on the cameras' RGB-D, as on a real arm")
        self.apply_button = QPushButton("Apply (reconnects)")
        self.apply_button.clicked.connect(self._apply)
        self.microphone = QComboBox()
        self.microphone.addItem("off", None)
        self.microphone.setToolTip("Record sound with every take (narration helps labelling)")
        self.microphone.activated.connect(lambda i: self.microphone_chosen.emit(
            self.microphone.itemData(i), self.microphone.itemText(i)))
        self.video = _combo(VIDEO_CHOICES)
        self.video.setToolTip("How the next takes store their cameras. H.264 keeps a noisy 640x480 colour camera at "
                              "a few MB a minute instead of ~1 GB; depth is always lossless (FFV1)")
        self.video.activated.connect(lambda i: self.video_quality_chosen.emit(self.video.itemData(i)))
        rescan = QPushButton("Rescan")
        rescan.setToolTip("Look again for RealSense cameras and microphones")
        rescan.clicked.connect(self.rescan_requested)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #777; font-size: 11px;")
        self.status = QTableWidget(0, 4)
        self.status.setHorizontalHeaderLabels(["camera", "fps", "dropped", "status"])
        self.status.verticalHeader().hide()
        self.status.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.status.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.status.verticalHeader().setDefaultSectionSize(17)
        self.status.setMaximumHeight(17 * 2 + 28)
        self.status.setStyleSheet("font-size: 11px;")

        serials = QHBoxLayout()
        for label, w in (("front", self.front), ("wrist", self.wrist), ("", self.size), ("fps", self.rate)):
            if label:
                serials.addWidget(QLabel(label))
            serials.addWidget(w, 1 if w in (self.front, self.wrist) else 0)
        objects = QHBoxLayout()
        objects.addWidget(self.objects, 1)
        objects.addWidget(self.apply_button)
        sound = QHBoxLayout()
        sound.addWidget(self.microphone, 1)
        sound.addWidget(rescan)
        layout = QFormLayout(self)
        layout.addRow("Cameras", self.camera_source)
        layout.addRow("", serials)
        layout.addRow("Objects", objects)
        layout.addRow("Sound", sound)
        layout.addRow("Video", self.video)
        layout.addRow(self.note)
        layout.addRow(self.status)
        self.camera_source.currentIndexChanged.connect(self._enable)
        self._robot, self._data_dir = "sim", None
        self._listed: tuple | None = None  # (cameras, microphones) shown

    # ---- intents ------------------------------------------------------------------------------------
    def chosen_setup(self) -> WorkcellSetup:
        """The set-up the box shows; CameraRigError / ValueError with one line when it cannot be."""
        camera = self.camera_source.currentData()
        rig = None
        if camera == "realsense":
            w, h = (int(v) for v in self.size.currentText().split("x"))
            rig = CameraRig(_serial(self.front), _serial(self.wrist), w, h, int(self.rate.currentText()))
        folder = None if self._data_dir is None else workcell_folder(self._data_dir, self._robot)
        return WorkcellSetup(camera=camera, objects=self.objects.currentData(), rig=rig, folder=folder)

    def _apply(self) -> None:
        try:
            setup = self.chosen_setup()
        except (CameraRigError, ValueError) as e:
            self.note.setText(f"<span style='color:#c62828'>{e}</span>")
            return
        self.setup_chosen.emit(setup)

    # ---- rendering ----------------------------------------------------------------------------------
    def show_robot(self, robot: str, data_dir, setup: WorkcellSetup | None) -> None:
        """The robot kind chosen in the connection bar, and how its workcell is (or will be) opened."""
        self._robot, self._data_dir = robot, data_dir
        simulated = is_simulated(robot)
        if setup is not None:
            _select(self.camera_source, setup.camera)
            _select(self.objects, setup.objects)
        else:
            _select(self.camera_source, "sim" if simulated else "realsense")
            _select(self.objects, "true" if simulated else "perceived")
        self._enable()

    def show_devices(self, realsense: tuple, microphones: tuple, note: str) -> None:
        if (realsense, microphones) != self._listed:
            self._listed = (realsense, microphones)
            for combo in (self.front, self.wrist):
                current = combo.currentData()
                combo.clear()
                combo.addItem(NO_CAMERA, "")
                for info in realsense:
                    combo.addItem(f"{info.name} {info.serial}", info.serial)
                combo.setCurrentIndex(max(0, combo.findData(current)))
            current = self.microphone.currentData()
            self.microphone.clear()
            self.microphone.addItem("off", None)
            for info in microphones:
                self.microphone.addItem(info.name, info.index)
            self.microphone.setCurrentIndex(max(0, self.microphone.findData(current)))
        self.note.setText(note)

    def show_cameras(self, statuses: tuple) -> None:
        if self.status.rowCount() != len(statuses):
            self.status.setRowCount(len(statuses))
        for row, st in enumerate(statuses):
            state = st.error or ("ok" if st.calibrated else "not calibrated: Calibrate before teaching objects")
            fps = f"{st.fps:.1f}" if st.fps else "with ticks"
            for col, text in enumerate((st.name, fps, str(st.drops), state)):
                item = self.status.item(row, col)
                if item is None:
                    item = QTableWidgetItem()
                    self.status.setItem(row, col, item)
                item.setText(text)
                item.setToolTip(text)
                if col == 3:
                    item.setForeground(Qt.GlobalColor.red if st.error else Qt.GlobalColor.black)

    def _enable(self) -> None:
        simulated = is_simulated(self._robot)
        realsense = self.camera_source.currentData() == "realsense"
        for w in (self.front, self.wrist, self.size, self.rate):
            w.setEnabled(realsense)
        self.objects.setEnabled(simulated)  # a real arm has only perceived objects


def _combo(choices) -> QComboBox:
    combo = QComboBox()
    for text, value in choices:
        combo.addItem(text, value)
    return combo


def _select(combo: QComboBox, value) -> None:
    index = combo.findData(value)
    if index >= 0:
        combo.setCurrentIndex(index)


def _serial(combo: QComboBox) -> str:
    return combo.currentData() or ""
