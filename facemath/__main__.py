"""`python -m facemath ...` runs the `facemath` command."""

from facemath_core.cli import main

if __name__ == "__main__":
    main()
