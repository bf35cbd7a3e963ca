"""The console's settings: one readable line for each mistake."""

from __future__ import annotations

import pytest

from console import load_console_settings
from devices import MqttUrl, SettingsError

URL = "mqtt://firegrid-console:s3cret@127.0.0.1:1883"


def test_defaults_and_the_brokers_account() -> None:
    settings = load_console_settings({"FIREGRID_MQTT_URL": URL, "FIREGRID_HTTP": "ignored:1"})
    assert settings.console_http == "127.0.0.1:8081"
    assert settings.console_api == "http://127.0.0.1:8080"
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8081)
    assert (settings.broker.user, settings.broker.password) == ("firegrid-console", "s3cret")
    assert str(settings.broker) == "127.0.0.1:1883" and not settings.tls


def test_percent_encoded_credentials_are_decoded() -> None:
    broker = MqttUrl.parse("mqtts://firegrid-console:a%2Fb%40c@broker:8883")
    assert (broker.password, broker.tls, broker.port) == ("a/b@c", True, 8883)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"FIREGRID_MQTT_URL": "mqtt://127.0.0.1:1883"}, "FIREGRID_MQTT_URL must name the console's account"),
        ({"FIREGRID_MQTT_URL": "http://x"}, "FIREGRID_MQTT_URL must look like mqtt://"),
        ({"FIREGRID_CONSOLE_HTTP": "8081"}, "FIREGRID_CONSOLE_HTTP must be host:port"),
        ({"FIREGRID_CONSOLE_API": "ftp://x"}, "FIREGRID_CONSOLE_API must look like http://host:port"),
        ({"FIREGRID_TOPIC_PREFIX": "a/b/"}, "FIREGRID_TOPIC_PREFIX must be one level"),
        ({"FIREGRID_CONSOLE_CERT": "/tmp/cert.pem"}, "FIREGRID_CONSOLE_CERT and FIREGRID_CONSOLE_KEY go"),
    ],
)
def test_mistakes_are_one_line(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_console_settings({"FIREGRID_MQTT_URL": URL, **environ})
    assert str(caught.value).startswith(message)
    assert "s3cret" not in str(caught.value) and "\n" not in str(caught.value)
