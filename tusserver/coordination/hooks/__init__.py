"""Hooks: the application hears of every upload, and can decide (tusd's events and wire format).

`model` is the wire format (the JSON a receiver gets and answers), `events` the events and which block,
`dispatch` runs the configured transports for an event; the transports are in-process callables, HTTP(S)
and executable files.
"""
