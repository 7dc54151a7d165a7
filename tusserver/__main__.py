"""`python -m tusserver`."""

from tusserver.commands import main

main()
