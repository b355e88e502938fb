"""``MIANZHANG_REDIS_URL`` takes every form the connection factory opens, and nothing else."""

from __future__ import annotations

import pytest

from mianzhang import ConfigError
from mianzhang.server._settings import load_settings


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://user:pw@redis.example:6380",
        "unix:///run/redis.sock?db=2",
        "redis+cluster://10.0.0.1:7000,10.0.0.2:7001",
        "rediss+cluster://u:p@node-a:7000",
        "redis+sentinel://s1:26379,s2:26380/mymaster/1",
        "redis+sentinel://s1/mymaster?sentinel_password=x",
    ],
)
def test_every_redis_url_form_is_accepted(url: str) -> None:
    settings = load_settings(log_backend="redis", redis_url=url)
    assert settings.redis_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379",
        "redis+sentinel://s1:26379",  # no service name
        "redis+cluster://10.0.0.1:7000/3",  # a cluster has database 0 only
        "redis+cluster://:7000",  # no host
    ],
)
def test_other_urls_are_refused_at_start(url: str) -> None:
    with pytest.raises(ConfigError, match="MIANZHANG_REDIS_URL"):
        load_settings(log_backend="redis", redis_url=url)
