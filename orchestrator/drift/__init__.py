"""Learning a host's state in one remote command, and comparing it with the desired state.

Pure: builds shell text and parses its output; the engine runs it. Imports no pyinfra.
"""
