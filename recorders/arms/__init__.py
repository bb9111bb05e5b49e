"""Arm backends behind one interface (base.Arm): the in-process MuJoCo arm and franky."""
