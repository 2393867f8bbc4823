"""PIE's built-in handler-type plugins, each registered exactly like a third-party plugin."""
