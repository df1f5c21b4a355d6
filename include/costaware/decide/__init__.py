"""Measurements and the decision: metrics on labelled windows, expected gain, the checkpoint.

Pure functions: nothing here reads or writes files, databases or the network."""
