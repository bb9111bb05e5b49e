"""`bench estop` on the in-process arm: the e-stop is pressed while the arm moves at speed, and it stops."""
from __future__ import annotations

from app.bench_estop import STOPPED_SPEED_M_S, bench_sim


def test_bench_estop_stops_the_simulated_arm_moving_at_the_speed_limit():
    result = bench_sim(trials=2)
    assert result["trials"] == 2 and result["clock"] == "simulated"
    assert result["speed_at_estop_m_s"]["median"] > 50 * STOPPED_SPEED_M_S  # it was moving at speed when pressed
    # Simulated time, so these hold however loaded the machine is.
    assert 0 < result["stop_s"]["max"] <= 1.0
    assert result["stopping_distance_mm"]["max"] < 20.0
    assert result["estop_call_ms"]["max"] >= 0.0
