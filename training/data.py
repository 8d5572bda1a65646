"""Old import path of the data loaders, kept for existing callers: data loading lives in ``scoredata``."""
from scoredata import *  # noqa: F401,F403
from scoredata import __all__  # noqa: F401
