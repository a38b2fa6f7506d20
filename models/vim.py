"""Placeholder: the vim family lands here (see its issue)."""
