"""The core layer: the transformation protocol and the state helpers every other layer uses.

Nothing here knows about a specific optimizer or about Keras's rules; see
``docs/architecture.md`` for the layers above.
"""
