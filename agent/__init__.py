"""Print-station agent: takes jobs, prints cards, reports status."""

__version__ = "0.1.0"
