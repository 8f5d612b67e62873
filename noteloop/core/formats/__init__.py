"""Annotation formats: readers and writers (see ``registry`` for the table by name)."""
