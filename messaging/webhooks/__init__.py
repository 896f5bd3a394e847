"""Provider callbacks in: `base` checks and records every webhook, one module per provider
reads its own payload (like messaging.backends)."""
