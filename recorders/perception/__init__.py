"""Perception for a workcell without a simulator's truth: hand-eye calibration with a ChArUco board,
objects and targets taught by clicking them in a camera view, and a tracker that gives their poses
in the robot base frame from RGB-D (DESIGN.md section 4). No Qt here, and no device SDKs: frames
come in as numpy arrays from whichever camera (rendered or RealSense) the workcell has."""
