"""The model and training settings of a new run (observations, model variant or the planner, position
frame, U-Net widths, which segments it learns from (all, or the takeover interventions only) and how
much more often intervention segments are drawn, steps, batch size, learning rate, seed, device,
checkpoint interval, tiny, run name; the planner's rephrasings, colour swaps, scene facts and task balance). Choices, defaults and tooltips come from the trainers' option
declarations through app/train_launch.py (`form_defaults`, `help_of`, the choice tuples); only the
display names are here.

`settings(...)` turns the fields and the chosen episodes into a validated
`app.train_launch.TrainSettings`, or raises ValueError with one line saying what is wrong.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QSpinBox)

from app.train_launch import (DEVICES, FRAMES, INTERVENTIONS, OBS_KINDS, PLANNER, PREDICTIONS, WEIGHT_RANGE,
                              TrainSettings, default_run_name, form_defaults, help_of)

VARIANT_CHOICES = (("call-conditioned (the policy)", "call", "Conditioned on the current call, its arguments and memory"),
                   ("flat baseline (the task, no calls)", "flat", "--flat: conditioned on the task and the cubes "
                                                                "and zones its instruction names, no calls"),
                   ("no memory (ablation)", "no-memory", "--no-memory: calls without the remembered poses"),
                   ("VLM planner (writes the calls)", PLANNER, "train planner: image + task + past calls -> the next "
                                                            "call as code (needs episodes with the front camera)"))
FRAME_NAMES = {"anchor": "call's object", "world": "robot base"}
PREDICTION_NAMES = {"sample": "clean chunk", "epsilon": "noise"}
INTERVENTION_NAMES = {"all": "all segments", "only": "interventions only"}


def _rate_text(rate: float) -> str:
    """A learning rate as people write it: 2e-4, 1e-3."""
    mantissa, exponent = f"{rate:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _choice(values, names: dict[str, str], default: str, tip: str) -> QComboBox:
    box = QComboBox()
    for value in values:
        box.addItem(names.get(value, value), value)
    box.setCurrentIndex(box.findData(default))
    box.setToolTip(tip)
    return box


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
        defaults = form_defaults("call")
        self.obs = _choice(OBS_KINDS, {}, defaults["obs"], help_of("obs"))
        self.variant = QComboBox()
        for text, value, tip in VARIANT_CHOICES:
            self.variant.addItem(text, value)
            self.variant.setItemData(self.variant.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.variant.setToolTip("Which model to train: the call-conditioned policy, one of the paper's baselines, or "
                                "the planner that writes the calls")
        self.frame = _choice(FRAMES, FRAME_NAMES, defaults["frame"], help_of("frame"))
        self.prediction = _choice(PREDICTIONS, PREDICTION_NAMES, defaults["prediction"], help_of("prediction"))
        self.widths = QLineEdit(",".join(map(str, defaults["down_dims"])))
        self.widths.setToolTip(help_of("down_dims"))
        self.interventions = _choice(INTERVENTIONS, INTERVENTION_NAMES, defaults["interventions"],
                                     help_of("interventions"))
        self.intervention_weight = QDoubleSpinBox()
        self.intervention_weight.setRange(*WEIGHT_RANGE)
        self.intervention_weight.setDecimals(1)
        self.intervention_weight.setSingleStep(0.5)
        self.intervention_weight.setValue(defaults["intervention_weight"])
        self.intervention_weight.setToolTip(help_of("intervention_weight"))
        self.interventions.currentIndexChanged.connect(self._enable_weight)
        self.steps = _spin(1, 10_000_000, defaults["steps"], help_of("steps"))
        self.batch_size = _spin(1, 4096, defaults["batch_size"], help_of("batch_size"))
        self.lr = QLineEdit(_rate_text(defaults["lr"]))
        self.lr.setToolTip(help_of("lr"))
        self.seed = _spin(0, 1_000_000, defaults["seed"], help_of("seed"))
        self.device = _choice(DEVICES, {}, defaults["device"], help_of("device"))
        self.checkpoint_every = _spin(0, 10_000_000, defaults["checkpoint_every"], help_of("checkpoint_every"))
        planner_defaults = form_defaults(PLANNER)
        self.rephrasings = _spin(0, 16, planner_defaults["rephrasings"], help_of("rephrasings", PLANNER))
        self.colour_swaps = _spin(0, 32, planner_defaults["colour_swaps"], help_of("colour_swaps", PLANNER))
        self.scene_facts = QCheckBox("read the scene's facts from the image")
        self.scene_facts.setChecked(planner_defaults["scene_facts"])
        self.scene_facts.setToolTip(help_of("scene_facts", PLANNER))
        self.balance_tasks = QCheckBox("balance tasks (rare ones get more copies)")
        self.balance_tasks.setChecked(planner_defaults["balance_tasks"])
        self.balance_tasks.setToolTip(help_of("balance_tasks", PLANNER))
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
                 (("segments", self.interventions), ("intervention weight", self.intervention_weight)),
                 (("widths", self.widths), ("batch", self.batch_size)),
                 (("steps", self.steps), ("learning rate", self.lr)),
                 (("seed", self.seed), ("device", self.device)),
                 (("rephrasings", self.rephrasings), ("colour swaps", self.colour_swaps)))
        for (a, wa), (b, wb) in pairs:
            row = QHBoxLayout()
            row.addWidget(wa, 1)
            row.addWidget(QLabel(b))
            row.addWidget(wb, 1)
            form.addRow(a, row)
        facts = QHBoxLayout()
        facts.addWidget(self.scene_facts)
        facts.addWidget(self.balance_tasks)
        form.addRow("", facts)
        form.addRow("checkpoint every", self.checkpoint_every)
        form.addRow("", self.tiny)
        form.addRow("run name", self.run_name)
        self.variant.currentIndexChanged.connect(self._on_variant)
        self._on_variant()

    def _on_variant(self) -> None:
        """The planner has no observation kind, frame, prediction, U-Net or intervention options; its
        defaults differ."""
        planner = self.variant.currentData() == PLANNER
        for w in (self.obs, self.frame, self.prediction, self.interventions):
            w.setEnabled(not planner)
        for w in (self.rephrasings, self.colour_swaps, self.scene_facts, self.balance_tasks):
            w.setEnabled(planner)
        self._enable_weight()
        self.widths.setEnabled(not planner and not self.tiny.isChecked())
        new = form_defaults(PLANNER if planner else "call")
        old = form_defaults("call" if planner else PLANNER)
        for box, name in ((self.steps, "steps"), (self.batch_size, "batch_size")):
            if box.value() == old[name]:  # a value the user chose stays
                box.setValue(new[name])
        if self.lr.text().strip() == _rate_text(old["lr"]):
            self.lr.setText(_rate_text(new["lr"]))

    def _enable_weight(self) -> None:
        """The weight applies to the policy over all segments ("only": every segment is an intervention)."""
        self.intervention_weight.setEnabled(self.variant.currentData() != PLANNER
                                            and self.interventions.currentData() == "all")

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
        variant, obs = self.variant.currentData(), self.obs.currentData()
        name = self.run_name.text().strip() or default_run_name(variant, obs)
        if Path(name).name != name or name in (".", ".."):
            raise ValueError(f"run name must be a plain folder name, got {name!r}")
        return TrainSettings(data=tuple(str(p) for p in episodes), out=str(Path(runs_dir) / name),
                             tasks=(task,) if task else (), edited_only=edited_only, obs=obs, variant=variant,
                             frame=self.frame.currentData(), prediction=self.prediction.currentData(),
                             down_dims=None if self.tiny.isChecked() else widths,
                             interventions=self.interventions.currentData(),
                             intervention_weight=self.intervention_weight.value(),
                             steps=self.steps.value(), batch_size=self.batch_size.value(), lr=lr,
                             seed=self.seed.value(), device=self.device.currentData(),
                             checkpoint_every=self.checkpoint_every.value(), tiny=self.tiny.isChecked(),
                             **(dict(rephrasings=self.rephrasings.value(), colour_swaps=self.colour_swaps.value(),
                                     scene_facts=self.scene_facts.isChecked(),
                                     balance_tasks=self.balance_tasks.isChecked()) if variant == PLANNER else {}))
