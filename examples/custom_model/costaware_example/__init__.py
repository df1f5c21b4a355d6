"""An example of bringing your own training code to costaware: see ``pipeline.train``."""
