"""Runs the Python binding tests with pytest; exit status 77 (the test is
skipped) when pytest is not installed.

The tests start child processes with the "spawn" method, which imports
this script again in every child: everything runs under the main guard.
"""

import os
import sys


def main():
    try:
        import pytest
    except ImportError:
        print("pytest not installed (python3-pytest): Python tests skipped")
        return 77
    here = os.path.dirname(os.path.abspath(__file__))
    return pytest.main(["-q", "-p", "no:cacheprovider", here]
                       + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
