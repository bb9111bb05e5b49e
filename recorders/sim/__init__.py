"""The simulated workcell: MuJoCo scene built around franky-sim's FR3 model, world state, cameras."""
