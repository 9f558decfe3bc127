"""Home Assistant MQTT discovery: what each sensor is, and the topics their states go to.

- one sensor per camera: the name of the person in view, back to ``none`` when the
  last appearance on that camera ends (the last event's fields are its attributes);
- one presence sensor per enrolled person: ``home`` each time a camera names them,
  ``not_home`` once no camera has for ``away_after_s`` (HA's ``off_delay``: ``expire_after``
  would make the sensor *unavailable*, not away). Forgetting a person removes it.

All configs are retained and point at the device's availability topic, so an entity
goes unavailable with the device.
"""

from __future__ import annotations

from typing import Any

from edge.base.names import topic_name

AT_REST = "none"
HOME, AWAY = "home", "not_home"
DEFAULT_AWAY_AFTER_S = 300


def _common(device: str, availability: str) -> dict[str, Any]:
    return {
        "availability_topic": availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [f"facelens_{device}"],
            "name": f"facelens {device}",
            "manufacturer": "facelens",
        },
    }


def camera_state_topic(prefix: str, camera: str) -> str:
    return f"{prefix}/{topic_name(camera)}/state"


def person_state_topic(prefix: str, device: str, name: str) -> str:
    return f"{prefix}/devices/{device}/people/{topic_name(name)}"


def camera_config(
    prefix: str, device: str, camera: str, availability: str
) -> tuple[str, dict[str, Any]]:
    """The discovery topic and config of ``camera``'s sensor (who is in view)."""
    uid = f"facelens_{device}_{camera}"
    config = {
        "name": f"{camera} person",
        "unique_id": f"{uid}_person",
        "state_topic": camera_state_topic(prefix, camera),
        "json_attributes_topic": f"{prefix}/{topic_name(camera)}/person",
        "icon": "mdi:face-recognition",
        **_common(device, availability),
    }
    return f"homeassistant/sensor/{uid}/config", config


def person_config(
    prefix: str, device: str, name: str, availability: str, away_after_s: float
) -> tuple[str, dict[str, Any]]:
    """The discovery topic and config of ``name``'s presence sensor."""
    uid = f"facelens_{device}_person_{topic_name(name)}"
    config = {
        "name": name,
        "unique_id": uid,
        "device_class": "presence",
        "state_topic": person_state_topic(prefix, device, name),
        "payload_on": HOME,
        "payload_off": AWAY,
        "off_delay": int(away_after_s),
        "icon": "mdi:account",
        **_common(device, availability),
    }
    return f"homeassistant/binary_sensor/{uid}/config", config
