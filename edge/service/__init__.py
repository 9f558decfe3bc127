"""Recognition as a service: the local HTTP API, MQTT events and Prometheus metrics."""
