"""The plugin host: the hooks, the component types (with their declared parameters) and the Backend interface that
plugins implement, the plugin manager that loads them (and records what it could not), and the guard and contracts
that hold plugin code to its promises.

This is the API that plugins (built in or third-party) program against. It imports only `base`.
"""
