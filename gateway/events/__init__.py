"""Live events: the in-process hub, the change-stream watcher and the event streams."""
