"""The model and training settings of a new run (observations, model variant or the planner, position
frame, U-Net widths, steps, batch size, learning rate, seed, device, checkpoint interval, tiny, run
name), with defaults and tooltips.

`settings(...)` turns the fields and the chosen episodes into a validated
`app.train_launch.TrainSettings`, or raises ValueError with one line saying what is wrong.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QSpinBox

from app.train_launch import PLANNER, TrainSettings, default_run_name

VARIANT_CHOICES = (("call-conditioned (the policy)", "call", "Conditioned on the current call, its arguments and memory"),
                   ("flat baseline (task text only)", "flat", "--flat: conditioned on the task text alone, no calls"),
                   ("no memory (ablation)", "no-memory", "--no-memory: calls without the remembered poses"),
                   ("VLM planner (writes the calls)", PLANNER, "train planner: image + task + past calls -> the next "
                                                            "call as code (needs episodes with the front camera)"))
# Defaults that differ between the two trainers: (steps, batch size, learning rate)
POLICY_DEFAULTS = (3000, 64, "2e-4")
PLANNER_DEFAULTS = (2000, 32, "1e-3")


def _spin(low: int, high: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setToolTip(tip)
    box.setGroupSeparatorShown(True)
    return box


class TrainSettingsForm(QGroupBox):
    def __init__(self, parent=None):
        super().__init__("Model and training", parent)
        self.obs = QComboBox()
        self.obs.addItems(["state", "rgb"])
        self.obs.setToolTip("state: arm and object poses; rgb: also the front and wrist cameras (slower)")
        self.variant = QComboBox()
        for text, value, tip in VARIANT_CHOICES:
            self.variant.addItem(text, value)
            self.variant.setItemData(self.variant.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.variant.setToolTip("Which model to train: the call-conditioned policy, one of the paper's baselines, or "
                                "the planner that writes the calls")
        self.frame = QComboBox()
        self.frame.addItem("call's object", "anchor")
        self.frame.addItem("robot base", "world")
        self.frame.setToolTip("Positions relative to the call's object or target (one approach shape for every "
                              "demonstration) or to the robot base")
        self.prediction = QComboBox()
        self.prediction.addItem("clean chunk", "sample")
        self.prediction.addItem("noise", "epsilon")
        self.prediction.setToolTip("What the U-Net learns to predict: the clean action chunk (learns faster) or the "
                                   "noise added to it (Chi et al.'s original)")
        self.widths = QLineEdit("64,128,256")
        self.widths.setToolTip("U-Net channel widths per level; 128,256,512 learns more and trains about 3x slower")
        self.steps = _spin(1, 10_000_000, 3000, "Optimiser steps in all")
        self.batch_size = _spin(1, 4096, 64, "Training windows per step")
        self.lr = QLineEdit("2e-4")
        self.lr.setToolTip("Peak learning rate of AdamW (linear warm-up over a tenth of the steps, then cosine)")
        self.seed = _spin(0, 1_000_000, 0, "Seeds the weights, the batch order and the diffusion noise")
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda", "mps"])
        self.device.setToolTip("auto: a GPU when torch sees one, else the CPU")
        self.checkpoint_every = _spin(0, 10_000_000, 500, "Write a checkpoint every N steps (0: only at the end "
                                                          "and when stopped)")
        self.tiny = QCheckBox("tiny model (smoke runs, tests)")
        self.tiny.setToolTip("A few-thousand-parameter network: trains in seconds, learns little")
        self.tiny.toggled.connect(lambda on: self.widths.setEnabled(not on and self.variant.currentData() != PLANNER))
        self.run_name = QLineEdit()
        self.run_name.setPlaceholderText("automatic: variant-obs-date-time")
        self.run_name.setToolTip("Folder of the new run inside the runs folder")

        form = QFormLayout(self)
        form.addRow("observations", self.obs)
        form.addRow("model", self.variant)
        pairs = ((("positions", self.frame), ("predicts", self.prediction)),
                 (("widths", self.widths), ("batch", self.batch_size)), (("steps", self.steps), ("learning rate", self.lr)),
                 (("seed", self.seed), ("device", self.device)))
        for (a, wa), (b, wb) in pairs:
            row = QHBoxLayout()
            row.addWidget(wa, 1)
            row.addWidget(QLabel(b))
            row.addWidget(wb, 1)
            form.addRow(a, row)
        form.addRow("checkpoint every", self.checkpoint_every)
        form.addRow("", self.tiny)
        form.addRow("run name", self.run_name)
        self.variant.currentIndexChanged.connect(self._on_variant)

    def _on_variant(self) -> None:
        """The planner has no observation kind, frame, prediction or U-Net; its defaults differ."""
        planner = self.variant.currentData() == PLANNER
        for w in (self.obs, self.frame, self.prediction):
            w.setEnabled(not planner)
        self.widths.setEnabled(not planner and not self.tiny.isChecked())
        old, new = (POLICY_DEFAULTS, PLANNER_DEFAULTS) if planner else (PLANNER_DEFAULTS, POLICY_DEFAULTS)
        for box, before, after in ((self.steps, old[0], new[0]), (self.batch_size, old[1], new[1])):
            if box.value() == before:  # a value the user chose stays
                box.setValue(after)
        if self.lr.text().strip() == old[2]:
            self.lr.setText(new[2])

    def settings(self, episodes: list[Path], runs_dir: Path, task: str | None = None,
                 edited_only: bool = False) -> TrainSettings:
        """The new run these fields describe, training on `episodes` into `runs_dir`/name."""
        if not episodes:
            raise ValueError("no episodes selected: tick at least one episode to train on")
        try:
            lr = float(self.lr.text())
        except ValueError:
            raise ValueError(f"learning rate must be a number such as 1e-4, got {self.lr.text()!r}") from None
        try:
            widths = tuple(int(w) for w in self.widths.text().split(","))
        except ValueError:
            raise ValueError(f"U-Net widths must be comma-separated integers such as 64,128,256, "
                             f"got {self.widths.text()!r}") from None
        variant, obs = self.variant.currentData(), self.obs.currentText()
        name = self.run_name.text().strip() or default_run_name(variant, obs)
        if Path(name).name != name or name in (".", ".."):
            raise ValueError(f"run name must be a plain folder name, got {name!r}")
        return TrainSettings(data=tuple(str(p) for p in episodes), out=str(Path(runs_dir) / name),
                             tasks=(task,) if task else (), edited_only=edited_only, obs=obs, variant=variant,
                             frame=self.frame.currentData(), prediction=self.prediction.currentData(), down_dims=None if self.tiny.isChecked() else widths,
                             steps=self.steps.value(), batch_size=self.batch_size.value(), lr=lr,
                             seed=self.seed.value(), device=self.device.currentText(),
                             checkpoint_every=self.checkpoint_every.value(), tiny=self.tiny.isChecked())
