"""The one exception type that the CLI turns into a one-line message and a non-zero exit."""


class OnnxShareError(Exception):
    """A problem with the user's model, configuration or paths, stated so the user knows what to do next."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when empty), at most 300 characters."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
