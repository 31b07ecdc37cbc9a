"""The tutorial's name for train_parallel.py: the same command-line interface and code."""

from train_parallel import main  # the scripts folder is on sys.path when run as a script

from ffjord_kit.errors import run_cli

if __name__ == "__main__":
    run_cli(main)
