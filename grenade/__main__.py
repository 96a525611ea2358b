"""`python3 -m grenade` is the `grenade` command (when the script is not on PATH)."""

from grenade.cli import main

main()
