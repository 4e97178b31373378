"""``python -m slopeft``: the same as the ``slopeft`` command."""

from slopeft.cli import main

if __name__ == "__main__":
    main()
