"""The one exception type that the CLI turns into a one-line message and a non-zero exit."""


class OnnxShareError(Exception):
    """A problem with the user's model, configuration or paths, stated so the user knows what to do next."""
