"""facemath's built-in plugins, registered through the `facemath` entry-point group like any other plugin."""
