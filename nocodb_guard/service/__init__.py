"""The long-running service: scheduler, listeners (metrics, webhook), systemd, health."""
