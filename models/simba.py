"""Placeholder: the simba family lands here (see its issue)."""
