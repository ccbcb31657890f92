"""``python -m fathom``: the installed module's version and what it was built with."""

import argparse
import sys

import fathom


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m fathom",
        description="fathom's Python module (`import fathom as faiss`).",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    args = parser.parse_args(argv)
    if args.version:
        print(f"fathom {fathom.__version__}")
        return 0
    print(f"fathom {fathom.__version__}: `import fathom as faiss` in Python; "
          f"threads: {fathom.omp_get_max_threads()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
