"""Learning and planning: policies, planner, memory, program interpreter, datasets. No Qt, no hardware SDKs."""
