"""Code2Act entry point: `python main.py` opens the app; `python main.py COMMAND ...` runs the CLI."""
import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
