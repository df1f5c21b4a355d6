"""A batch's way in: the landing zone, Great Expectations validation, labels and drift."""
