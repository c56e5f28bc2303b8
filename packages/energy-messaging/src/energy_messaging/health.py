"""Health check for the MQTT connection (see :class:`MQTTHealthCheck`)."""

from energy_messaging.mqtt._health import MQTTHealthCheck

__all__ = ["MQTTHealthCheck"]
