"""Devices and episode I/O: arms (sim, franky), cameras, the logged robot API, episode files.

Nothing in this package imports Qt (a test enforces it); the GUI reaches it through app/.
"""
