"""The command line: parses argv, calls the core, prints, and maps outcomes to exit codes.

The only part of patchring that prints. Nothing imports it.
"""
