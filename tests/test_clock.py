"""A drill's faster clock runs the engine's loops as often in its time as
production does in real time (the outlook a caller is told is as fresh)."""

from ivr.ami.controller import PUBLISH_S
from ivr.clock import ScaledClock, WallClock, wall_interval


def test_loops_run_in_the_clocks_time_with_a_floor():
    assert wall_interval(WallClock(), PUBLISH_S) == PUBLISH_S
    assert wall_interval(ScaledClock.starting_now(0.0, 2.0), PUBLISH_S) == PUBLISH_S / 2
    # at speed 10 a 0.25 s publish was 2.5 simulated seconds behind the queue; now 0.5 at most (the floor)
    assert wall_interval(ScaledClock.starting_now(0.0, 10.0), PUBLISH_S) == 0.05
