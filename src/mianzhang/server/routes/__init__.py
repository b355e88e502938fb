"""One router per feature; each takes accessors for the services it needs."""
