"""Seeing a run: the trace every event goes into, records and dataframes made
from it, narration in words, the live terminal view, and plots. Everything
here reads traces; nothing here drives a cluster."""
