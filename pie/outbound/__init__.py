"""Requests PIE itself sends to addresses its users name (the `http` handler type, webhooks):
Standard Webhooks signing and the destination guard."""
