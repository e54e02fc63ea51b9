"""Evaluation and analysis of run directories: normalised exact match, summaries,
reports and paper tables. Nothing here runs a model (the LLM judge is an API call).

Add an analysis: a module with a function taking a run directory (or its rows)
and returning data; keep printing/formatting in a separate function.
"""
