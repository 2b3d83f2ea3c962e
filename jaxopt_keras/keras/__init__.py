"""The Keras rules layer: each family's constructor rules, Keras's order of
operations, and the functional factories made from the registry."""
