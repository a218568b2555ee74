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
