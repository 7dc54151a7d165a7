"""`python -m tusserver`."""

from tusserver.serving.cli import main

main()
