"""Outgoing webhooks: Herald's events, signed and posted to the integrations subscribed.

- `events`: follows what the lower layers announce (contacts.events) and writes each
  event as outbox rows (WebhookDelivery), in the transaction of the change it tells of;
  nothing is read or written while no active subscription wants that event type.
- `delivery`: django-q2 tasks post the due rows, a batch at a time over a pool of
  threads, signed as Standard Webhooks describes (`signing`); each try is recorded, a
  failure retried after 5 s, 30 s, 2 min, 10 min, 1 h, then hourly for a day, and a
  subscription whose every delivery failed for a day is turned off.

The rules (retry schedule, giving up, turning off, claiming) live on the models
(api.models); these modules are the machinery that applies them.
"""
