"""Printer drivers behind one interface, chosen by the printer URL scheme."""
