"""Hugging Face Space entry point (README front matter: app_file: space_app.py).

Spaces run `python space_app.py`; a top-level app.py would shadow the `app` package, hence this name.
"""

import app.gpu  # noqa: F401  (spaces before torch, for ZeroGPU)
from app.__main__ import main

if __name__ == "__main__":
    main(["--host", "0.0.0.0"])
