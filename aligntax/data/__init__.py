"""Reading, cleaning, splitting and casing the TL;DR posts."""
