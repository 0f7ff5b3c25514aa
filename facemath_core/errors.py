"""The one error type the library raises for anything a user can fix."""


class FacemathError(Exception):
    """A problem with the user's input or environment, with a message that says what to change.

    The CLI prints the message as one red line and exits 1; it never shows a traceback for these.
    """


class PluginError(FacemathError):
    """Plugin code failed or broke its contract; the message names the component and the plugin providing it."""
