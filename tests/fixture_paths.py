"""Where the shared fixtures made with the original code live: $SCORESDE_FIXTURES, else ../shared/fixtures
next to the repository (the layout of the development machines and CI)."""
import os

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_FIXTURES = os.environ.get("SCORESDE_FIXTURES") or os.path.join(os.path.dirname(_REPO), "shared", "fixtures")


def shared(*parts: str) -> str:
    """Path of a shared fixture (tests skip when it is not there)."""
    return os.path.join(SHARED_FIXTURES, *parts)
