"""One live session: how it ends (endings)."""
