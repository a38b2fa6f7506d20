"""Placeholder: the vmamba family lands here (see its issue)."""
