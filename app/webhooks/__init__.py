"""Webhooks: endpoints per project, an outbox written with each terminal status, signed
deliveries."""
