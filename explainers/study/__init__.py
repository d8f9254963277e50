"""The agreement study: every chosen method over a whole data set, on Ray Data, to a Parquet file and a report.

Ten presets only give anecdotes; this package asks the assignment's question (do CAM and LIME agree
more on simple images than on complex ones?) of thousands of images. It needs the optional `scale`
extra (ray, pyarrow, datasets), which the Space does not install: `require_scale()` says so in one line.
"""

from __future__ import annotations

import importlib.util

from explainers.errors import XaiLensError

SCALE_PACKAGES = ("ray", "pyarrow", "datasets")
INSTALL_HINT = "pip install .[scale]"


def require_scale(packages: tuple[str, ...] = SCALE_PACKAGES) -> None:
    """Raise one line naming the extra when any of its packages is missing (checked without importing them)."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise XaiLensError(f"The study needs {', '.join(missing)} (the 'scale' extra): run `{INSTALL_HINT}` and retry.")
