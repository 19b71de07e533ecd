"""FHIR R4 Subscriptions (issue 13): criteria-based, rest-hook and websocket channels, delivered
from the outbox at least once, in commit order per subscription, as the subscriber may read."""
