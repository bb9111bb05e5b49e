"""Code2Act entry point: `python main.py` opens the desktop app; `python main.py COMMAND ...` runs the CLI.

Commands that need Qt widgets (gui, screenshots, bench annotate) go to widgets/launcher.py,
everything else to app/cli.py, so the CLI never imports widgets.
"""
import sys

from app.cli import is_gui_command


def main(argv: list[str]) -> int:
    if is_gui_command(argv):
        from widgets.launcher import main as gui_main

        return gui_main(argv)
    from app.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
