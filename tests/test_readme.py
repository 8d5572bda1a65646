"""The README's Python snippets run as written, so they cannot drift from the code (issue 10).

Every ```python block of README.md runs in order in one namespace, as a reader pasting them one after
the other would (later blocks use ``mix``, ``sde``, ``g`` of earlier ones); the ``assert`` lines in the
blocks check their stated figures. A block that needs files (a trained workdir, downloaded weights) or
minutes says so on a line of its own, ``# readme-test: skip (<why>)``, and is not run.
"""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = "# readme-test: skip"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, code) of every ```python block."""
    return [(text[:m.start()].count("\n") + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def test_python_blocks_are_found_and_the_skip_marker_is_honoured():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\n# readme-test: skip (needs files)\nopen('f')\n```\n"
    blocks = python_blocks(text)
    assert blocks == [(2, "x = 1\n"), (8, "# readme-test: skip (needs files)\nopen('f')\n")]
    assert [MARKER in code for _, code in blocks] == [False, True]


def test_readme_python_blocks_run():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        blocks = python_blocks(f.read())
    assert len(blocks) >= 6
    namespace: dict = {"__name__": "__readme__"}
    ran = 0
    for line, code in blocks:
        if MARKER in code:
            continue
        exec(compile(code, f"README.md:{line}", "exec"), namespace)   # noqa: S102 (the README's own code)
        ran += 1
    assert ran >= 6
