"""One MQTT URL for every process (devices/_mqtt_url.py)."""

from __future__ import annotations

import pytest

from devices import MqttUrl


def test_percent_encoded_credentials_and_default_ports() -> None:
    assert MqttUrl.parse("mqtt://firegrid:a%40b%3Ac%2Fd@broker") == MqttUrl(
        "broker", 1883, "firegrid", "a@b:c/d", False
    )
    assert MqttUrl.parse("mqtts://broker").port == 8883
    assert MqttUrl.parse("ssl://broker:9000").tls
    assert str(MqttUrl.parse("mqtt://u:secret@broker:1884")) == "broker:1884"


@pytest.mark.parametrize(
    "url", ["http://u:secret@broker", "mqtt://u:secret@", "mqtt://u:secret@broker:99999", "broker:1883"]
)
def test_refusals_are_one_line_without_the_password(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        MqttUrl.parse(url)
    assert "secret" not in str(caught.value)
    assert "\n" not in str(caught.value)
