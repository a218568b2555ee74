import pytest

from ivr.errors import ConfigError
from ivr.logs import mask_number
from ivr.settings import load_settings


def test_defaults(project_home, tmp_path):
    s = load_settings({"IVR_HOME": str(project_home)})
    assert str(s.agi_listen) == "127.0.0.1:4573" and s.redis_url is None and s.ami is None
    assert s.timezone.key == "Asia/Shanghai" and s.data_dir == project_home / "var"


def test_every_wrong_setting_is_named_at_once(project_home):
    with pytest.raises(ConfigError) as exc:
        load_settings({"IVR_HOME": str(project_home), "IVR_AGI_LISTEN": "4573", "IVR_AMI_URL": "http://x",
                       "IVR_TIMEZONE": "Mars/Olympus", "IVR_REDIS_URL": "mysql://x", "IVR_DRAIN_S": "-1"})
    msg = str(exc.value)
    for name in ("IVR_AGI_LISTEN='4573'", "IVR_AMI_URL='http://x'", "IVR_TIMEZONE='Mars/Olympus'",
                 "IVR_REDIS_URL='mysql://x'", "IVR_DRAIN_S='-1'"):
        assert name in msg


def test_config_file_and_env_precedence(project_home, tmp_path):
    cfg = tmp_path / "ivr.toml"
    cfg.write_text('agi_listen = "0.0.0.0:5000"\nami_url = "ami://ivr:s3cret@10.0.0.5:5038"\n')
    s = load_settings({"IVR_HOME": str(project_home), "IVR_CONFIG": str(cfg)})
    assert s.agi_listen.port == 5000 and s.ami.secret == "s3cret" and s.ami.host == "10.0.0.5"
    s = load_settings({"IVR_HOME": str(project_home), "IVR_CONFIG": str(cfg), "IVR_AGI_LISTEN": "127.0.0.1:6000"})
    assert s.agi_listen.port == 6000
    cfg.write_text('agi_lisen = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting 'agi_lisen'"):
        load_settings({"IVR_HOME": str(project_home), "IVR_CONFIG": str(cfg)})


@pytest.mark.parametrize("number, masked", [("13800138000", "138******00"), ("12345", "*****"), ("010-1234", "010***34")])
def test_mask_number(number, masked):
    assert mask_number(number) == masked


def test_a_wrong_clock_is_named():
    from ivr.clock import ScaledClock, WallClock, from_setting
    from ivr.errors import ConfigError

    assert isinstance(from_setting(None), WallClock) and isinstance(from_setting("wall"), WallClock)
    c = from_setting("scaled:1000.0:15:0.0")
    assert isinstance(c, ScaledClock) and c.speed == 15
    for bad in ("scaled:1:0:0", "scaled:x:1:0", "fast"):
        with pytest.raises(ConfigError, match="IVR_CLOCK"):
            from_setting(bad)
    for bad in ("scaled:1:6:0:100=0", "scaled:1:6:0:200=9,100=12", "scaled:1:6:0:100=9,100=12", "scaled:1:6:0:x"):
        with pytest.raises(ConfigError, match="IVR_CLOCK"):
            from_setting(bad)


def test_a_clock_that_runs_faster_later_is_one_time_line_in_every_process(monkeypatch):
    """A long drill's quiet hours run faster than its peak: the engine
    processes get the same piecewise time line from ``IVR_CLOCK``, and the
    speed, a sleep and the time agree at and across each change."""
    import asyncio

    from ivr import clock as clock_mod
    from ivr.clock import ScaledClock, from_setting

    wall = [50.0]
    monkeypatch.setattr(clock_mod.time, "monotonic", lambda: wall[0])
    c = ScaledClock(1000.0, 6.0, 50.0, ((600.0, 12.0), (1800.0, 30.0)))
    again = from_setting(c.describe())
    assert again == c
    # 600 simulated s at 6x take 100 wall s; 1,200 at 12x another 100; then 30x
    for w, sim, speed in ((0, 0, 6), (50, 300, 6), (100, 600, 12), (150, 1200, 12), (200, 1800, 30),
                          (210, 2100, 30), (-10, -60, 6)):
        wall[0] = 50.0 + w
        assert c.elapsed() == pytest.approx(sim) and c.now() == pytest.approx(1000.0 + sim)
        assert c.speed == speed and again.elapsed() == pytest.approx(sim)
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)
    monkeypatch.setattr(clock_mod.asyncio, "sleep", fake_sleep)
    wall[0] = 50.0 + 50         # simulated 300: 300 s more at 6x (50 wall s), then 600 at 12x (50 wall s)
    asyncio.run(c.sleep(900))
    assert slept == [pytest.approx(100.0)]
    assert ScaledClock(0.0, 6.0, 0.0).describe().count(":") == 3      # the plain form as before


def test_a_line_count_read_every_wall_second_stays_fresh_when_the_drill_clock_runs_faster(monkeypatch):
    """The line count is read every second of the engine's time and taken as
    no count after 10 simulated seconds (``admission.lines.STALE_S``). Read
    every wall second, it went stale on every round once a long drill's
    evening ran at 12x or more, and the flows' line rules and the callback
    hold switched off unseen. The leader's loops now read the speed of the
    moment each round."""
    import asyncio

    from ivr import clock as clock_mod
    from ivr.admission.lines import STALE_S
    from ivr.ami import lines as lines_mod
    from ivr.clock import ScaledClock, every, paced

    wall = [0.0]
    monkeypatch.setattr(clock_mod.time, "monotonic", lambda: wall[0])
    c = ScaledClock(0.0, 6.0, 0.0, ((600.0, 27.0),))
    interval = paced(c, lines_mod.EVERY_S)
    assert every(interval) == pytest.approx(1 / 6)
    wall[0] = 200.0                                 # simulated 600 + 100 x 27
    assert every(interval) * c.speed < STALE_S and every(interval) == pytest.approx(0.05)
    assert paced(ScaledClock(0.0, 6.0, 0.0), 1.0) == pytest.approx(1 / 6)   # one speed: a constant, as before
    slept: list[float] = []

    class Watch(lines_mod.LineWatch):
        async def read_once(self):
            wall[0] = 0.0 if not slept else 200.0
            return None

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        if len(slept) == 2:
            raise asyncio.CancelledError
    monkeypatch.setattr(lines_mod.asyncio, "sleep", fake_sleep)
    w = Watch.__new__(Watch)
    w.every_s = interval
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(w.run())
    assert slept == [pytest.approx(1 / 6), pytest.approx(0.05)]
