"""A local package shipped in the repository (no PyPI)."""


def greet(name: str) -> str:
    return f"hello from kiln python-http, {name}\n"
