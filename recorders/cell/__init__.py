"""The workcell: what a recording, a rollout or a run talks to (an arm behind the safety layer, the
scene it works in, its cameras), whichever robot kind is behind it."""
