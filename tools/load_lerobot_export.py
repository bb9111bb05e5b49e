"""Load an `export lerobot` folder with LeRobot's own LeRobotDataset (run in tools/check_lerobot_export.sh's
Python 3.12 environment, never the app's): prints the episodes, frames, one item's features and its task."""
import sys
from lerobot.datasets.lerobot_dataset import LeRobotDataset
root = sys.argv[1]
ds = LeRobotDataset("local/code2act", root=root, video_backend="pyav")
print("episodes", ds.num_episodes, "frames", ds.num_frames, "fps", ds.fps)
item = ds[0]
for k, v in item.items():
    print(k, getattr(v, "shape", v) if not isinstance(v, str) else repr(v))
last = ds[ds.num_frames - 1]
print("last task", last.get("task"), "subtask", last.get("subtask"))
