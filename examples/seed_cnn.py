"""The broken CNN users bring us: two stray views, and fc1 sized for another network.

It ships inside the package (inspector/demo.py), so that `torch-inspector demo` works from an
installed wheel. Run this file as a script to open the inspector on it.
"""

from inspector.demo import SeedCNN, build

__all__ = ["SeedCNN", "build"]

if __name__ == "__main__":
    from inspector.cli import open_example

    open_example(build)
