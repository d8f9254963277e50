"""The one exception type people see: its message is a single line saying what was wrong and what to do."""


class XaiLensError(ValueError):
    """A problem with the user's input or environment, phrased for a person (never a traceback)."""
