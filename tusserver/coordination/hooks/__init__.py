"""Hooks: the application hears of every upload, and can decide (tusd's events and wire format).

`model` is the wire format (the JSON a receiver gets and answers), `events` the events and which block,
`dispatch` runs the transports an event goes to (in-process callables here; `http` and `files` the others),
`requests` builds an event's request from an upload record, `outgoing` queues one request's non-blocking
events, `delivery` sends the outbox (post-create, post-finish, post-terminate, at least once), and `setup`
builds all of it from the settings.
"""
