"""The REST API and the web page: a thin adapter over SearchEngine."""
