"""The robot's memory: key poses and the history of calls.

Key poses are stored by `remember(key, obj)` and captured automatically when a pick closes the
gripper or a place opens it; `recall(key)` reads them back as place targets after the object has
moved (the non-Markovian tasks swap and restore need this). Serialisable into episode files.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from recorders.pose import Pose


@dataclass(frozen=True)
class KeyPose:
    key: str
    pose: Pose
    time: float
    source: str  # "remember" | "pick" | "place"


@dataclass
class Memory:
    poses: dict[str, KeyPose] = field(default_factory=dict)
    captured: list[KeyPose] = field(default_factory=list)  # gripper events, oldest first
    history: list[str] = field(default_factory=list)  # codes of finished calls, oldest first

    def remember(self, key: str, pose: Pose, time: float) -> None:
        self.poses[key] = KeyPose(key, pose, time, "remember")

    def recall(self, key: str) -> Pose:
        if key not in self.poses:
            known = ", ".join(repr(k) for k in self.poses) or "none yet"
            raise KeyError(f"nothing remembered under {key!r}; keys: {known}")
        return self.poses[key].pose

    def capture(self, event: str, obj: str, pose: Pose, time: float) -> None:
        self.captured.append(KeyPose(f"{event} {obj}", pose, time, event))

    def to_json(self) -> dict:
        kp = lambda k: {"key": k.key, "pose": list(k.pose.to_array()), "time": k.time, "source": k.source}  # noqa: E731
        return {"poses": [kp(k) for k in self.poses.values()], "captured": [kp(k) for k in self.captured],
                "history": list(self.history)}

    @staticmethod
    def from_json(d: dict) -> "Memory":
        kp = lambda e: KeyPose(e["key"], Pose.from_array(e["pose"]), e["time"], e["source"])  # noqa: E731
        return Memory({e["key"]: kp(e) for e in d.get("poses", [])}, [kp(e) for e in d.get("captured", [])],
                      list(d.get("history", [])))
