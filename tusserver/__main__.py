"""`python -m tusserver`."""

from tusserver.cli import main

main()
