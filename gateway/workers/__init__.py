"""Background work inside a serving gateway: schedulers, the Kafka relay, the partner consumer."""
