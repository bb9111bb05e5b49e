"""The workcell: what a recording, a rollout or a run talks to (an arm behind the safety layer, the
scene it works in, its cameras), whichever robot kind is behind it.

    registry.py             robot kind -> WorkcellKind (what it is, how to open it); open_workcell()
    workcell.py             the Workcell interface every kind implements
    scene.py                the scene description (cubes, zones, colours, sizes, cameras): plain data
    camera_geometry.py      camera mounts and poses (OpenCV optical frame), projecting base-frame points
    sim_workcell.py         sim: MuJoCo in this process, stepped faster than real time
    franky_sim_workcell.py  franky-sim: the same scene in a franky-sim server, driven through franky
    franky_workcell.py      franky: a real Franka arm at its FCI address

Importing this package imports nothing; the registry imports a workcell module (and with it MuJoCo
or franky) only when a workcell of that kind is opened.
"""
