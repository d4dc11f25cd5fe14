"""A model of a retransfer ID-card printer, for tests and demos."""
