"""Serving the app: the command line, uvicorn (with its body splicing) and granian."""
