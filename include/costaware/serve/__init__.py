"""Serving: the champion over HTTP, every prediction logged (README, "The live loop")."""
