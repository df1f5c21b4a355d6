"""The live model between retrains: drift, volume, label coverage, metric over time, CBPE."""
